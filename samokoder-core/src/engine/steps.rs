//! One step per phase: the `match` that picks the agent, and what each step does with its
//! answer. Every handler reads `d.state` and returns a [`StepOutcome`]; nothing is written
//! until the orchestrator commits it.

use std::time::Duration;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::{
    Ask, CommandDecision, CommandResult, Drive, Engine, EngineError, SandboxBlock, StepOutcome,
    StepStop, affirmative, guards,
};
use crate::agents::{
    AgentCtx, architect, code_writer, developer, executor, spec_writer, task_completer, tech_lead,
    technical_writer, troubleshooter,
};
use crate::install::{self, InstallRequest};
use crate::llm::AgentRole;
use crate::state::{
    Autonomy, CommandFailure, EngineEvent, Phase, QuestionPurpose, QuestionSpec, Retry, RunOutcome,
    RunState, StepAction, StepStatus, TaskStage, TaskStatus,
};
use crate::workspace::{
    BlobSource, ChangeKind, MaterializeOptions, ScanOptions, materialize, scan,
};

/// Moves past work that is already done (finished steps, the end of a step list) without a
/// checkpoint: the result follows from the state alone, so a resumed run computes it again.
pub(crate) fn advance(state: &mut RunState) {
    while let Phase::Task {
        index,
        stage: TaskStage::Step { step },
    } = state.phase
    {
        let Some(task) = state.tasks.get(index) else {
            state.phase = Phase::Failed {
                reason: format!("the state names task {} which does not exist", index + 1),
            };
            return;
        };
        state.phase = if step >= task.steps.len() {
            Phase::Task {
                index,
                stage: TaskStage::Verifying,
            }
        } else if task.steps[step].status != StepStatus::Pending {
            Phase::Task {
                index,
                stage: TaskStage::Step { step: step + 1 },
            }
        } else {
            return;
        };
    }
}

/// Applies a person's (or the default) answer to the state whose phase is already the resume
/// phase.
pub(crate) fn apply_answer(state: &mut RunState, purpose: &QuestionPurpose, answer: &str) {
    match purpose {
        QuestionPurpose::Clarification { index } => {
            if let Some(c) = state.clarifications.get_mut(*index) {
                c.answer = Some(answer.to_owned());
            }
        }
        QuestionPurpose::HumanStep { task, step } => {
            if let Some(s) = state
                .tasks
                .get_mut(*task)
                .and_then(|t| t.steps.get_mut(*step))
            {
                s.status = StepStatus::Done;
                s.note = Some(format!("the person answered: {answer}"));
            }
        }
        QuestionPurpose::ApproveCommand { task, step } => {
            let approved = affirmative(answer);
            let Some(t) = state.tasks.get_mut(*task) else {
                return;
            };
            match step {
                Some(step) => {
                    if let Some(s) = t.steps.get_mut(*step) {
                        if approved {
                            s.approved = true;
                        } else {
                            s.status = StepStatus::Skipped;
                            s.note = Some(format!("not approved ({answer})"));
                        }
                    }
                }
                None if approved => t.verify_approved = true,
                None => {
                    state.phase = Phase::Failed {
                        reason: format!(
                            "the verification command of task {:?} was not approved",
                            t.title
                        ),
                    };
                }
            }
        }
        QuestionPurpose::LoopDetected { signature } => {
            if affirmative(answer) {
                guards::forget_failure(&mut state.guard, signature);
            } else {
                state.phase = Phase::Failed {
                    reason: format!("stopped after a repeated failure: {signature}"),
                };
            }
        }
        QuestionPurpose::StepCap => {
            if affirmative(answer) {
                // The cap counts steps from here again: the step applying this answer is
                // `state.step + 1`, and the configured number of steps follows it.
                state.guard.extra_steps = state.step + 1;
            } else {
                state.phase = Phase::Failed {
                    reason: format!("stopped at the step cap ({} steps)", state.step),
                };
            }
        }
    }
}

fn task_phase(index: usize, stage: TaskStage) -> Phase {
    Phase::Task { index, stage }
}

impl Engine {
    fn ctx<'a>(&'a self, d: &'a Drive, step_key: &'a str) -> AgentCtx<'a> {
        AgentCtx {
            llm: self.session(d, step_key),
            prompts: self.prompts(),
            state: &d.state,
            files: &d.files,
            sandbox: &d.sandbox,
            events: &d.bus,
            config: &self.config,
            step_key,
        }
    }

    /// Runs the step the current phase calls for.
    pub(crate) async fn step(&self, d: &mut Drive) -> Result<StepOutcome, StepStop> {
        // Keyed by the checkpoint this step will become (the branch's next sequence number):
        // the same after a crash, so a redone step finds its answers; new after a rollback, so
        // a step taken again from an old state asks afresh instead of replaying.
        let next = d.head.as_ref().map_or(0, |h| h.sequence) + 1;
        let step_key = format!("checkpoint-{next}");
        match d.state.phase.clone() {
            Phase::NeedsSpec => self.spec_step(d, &step_key).await,
            Phase::NeedsArchitecture => self.architecture_step(d, &step_key).await,
            Phase::NeedsPlan => self.plan_step(d, &step_key).await,
            Phase::Task { index, stage } => {
                if index >= d.state.tasks.len() {
                    return Err(StepStop::Outcome(RunOutcome::Failed {
                        reason: format!("the state names task {} which does not exist", index + 1),
                    }));
                }
                match stage {
                    TaskStage::Planning => self.planning_step(d, &step_key, index).await,
                    TaskStage::Step { step } => self.task_step(d, &step_key, index, step).await,
                    TaskStage::Verifying => self.verify_step(d, &step_key, index).await,
                    TaskStage::Debugging { attempt, retry } => {
                        self.debug_step(d, &step_key, index, attempt, retry).await
                    }
                    TaskStage::Completing => self.complete_step(d, &step_key, index).await,
                }
            }
            Phase::NeedsReadme => self.readme_step(d, &step_key).await,
            // The loop handles these before asking for a step.
            Phase::WaitingForHuman { .. } | Phase::Done | Phase::Failed { .. } => {
                Err(StepStop::Error(EngineError::Internal(format!(
                    "no step for phase {}",
                    d.state.phase.label()
                ))))
            }
        }
    }

    async fn spec_step(&self, d: &Drive, key: &str) -> Result<StepOutcome, StepStop> {
        let mut state = d.state.clone();
        let ask_next = |state: &RunState| {
            state
                .clarifications
                .iter()
                .position(|c| c.answer.is_none())
                .map(|index| {
                    let c = &state.clarifications[index];
                    Ask {
                        spec: QuestionSpec {
                            text: c.question.clone(),
                            buttons: c.options.clone(),
                            default_answer: Some(c.default_answer.clone()),
                        },
                        purpose: QuestionPurpose::Clarification { index },
                        resume: Phase::NeedsSpec,
                    }
                })
        };
        if !state.clarified {
            self.agent_started(d, AgentRole::SpecWriter, "clarifying questions")
                .await;
            let questions = spec_writer::clarify(&self.ctx(d, key)).await?;
            let count = questions.len();
            state.clarifications = questions;
            state.clarified = true;
            let mut outcome = StepOutcome::new("spec: clarifying questions", state);
            outcome.events.push(EngineEvent::AgentFinished {
                agent: AgentRole::SpecWriter,
                step: d.state.step + 1,
                summary: format!("{count} clarifying question(s)"),
            });
            outcome.ask = ask_next(&outcome.state);
            return Ok(outcome);
        }
        if let Some(ask) = ask_next(&state) {
            let mut outcome = StepOutcome::new("spec: question", state);
            outcome.ask = Some(ask);
            return Ok(outcome);
        }
        self.agent_started(d, AgentRole::SpecWriter, "specification")
            .await;
        let spec = spec_writer::write_spec(&self.ctx(d, key)).await?;
        let summary = format!("specification with {} features", spec.features.len());
        state.spec = Some(spec);
        state.phase = Phase::NeedsArchitecture;
        let mut outcome = StepOutcome::new("spec", state);
        outcome.events.push(EngineEvent::AgentFinished {
            agent: AgentRole::SpecWriter,
            step: d.state.step + 1,
            summary,
        });
        Ok(outcome)
    }

    async fn architecture_step(&self, d: &mut Drive, key: &str) -> Result<StepOutcome, StepStop> {
        self.agent_started(d, AgentRole::Architect, "architecture")
            .await;
        let installs = self.deps().runner.can_install();
        let mut templates = self.deps().templates.list();
        if !installs {
            // Without a registry only templates with nothing to install can be built.
            templates.retain(|t| !t.needs_install);
        }
        if let Some(wanted) = &d.run.options.template {
            // The run was started with a template: the architect designs on that one only.
            templates.retain(|t| &t.name == wanted);
            if templates.is_empty() {
                return Err(StepStop::Outcome(RunOutcome::Failed {
                    reason: format!(
                        "the run asks for the starter template {wanted:?}, which does not exist{}",
                        if installs {
                            ""
                        } else {
                            " or needs packages this server cannot install"
                        }
                    ),
                }));
            }
        }
        // The sandbox's real tools, once per run: the architect and every later prompt state
        // them (they are facts of the host, so finding them again after a crash is the same).
        if d.state.tools.is_empty() {
            let dir = d.workdir(&self.deps().workdir);
            d.state.tools = self.probe_tools(d, &dir).await;
        }
        let d = &*d;
        let (architecture, template) = architect::choose(&self.ctx(d, key), &templates).await?;
        let files = self
            .deps()
            .templates
            .render(&template.name, "app")
            .map_err(|e| {
                StepStop::Outcome(RunOutcome::Failed {
                    reason: format!("starter template {}: {e}", template.name),
                })
            })?;
        let mut state = d.state.clone();
        state.architecture = Some(architecture);
        state.phase = Phase::NeedsPlan;
        let mut outcome = StepOutcome::new(format!("architecture: {}", template.name), state);
        for (path, content) in files {
            outcome.writes.insert(path, Some(content));
        }
        outcome.events.push(EngineEvent::AgentFinished {
            agent: AgentRole::Architect,
            step: d.state.step + 1,
            summary: format!("starter template {}", template.name),
        });
        Ok(outcome)
    }

    async fn plan_step(&self, d: &Drive, key: &str) -> Result<StepOutcome, StepStop> {
        self.agent_started(d, AgentRole::TechLead, "plan").await;
        let (epics, tasks) = tech_lead::plan(&self.ctx(d, key)).await?;
        let mut state = d.state.clone();
        let summary = format!("{} epic(s), {} task(s)", epics.len(), tasks.len());
        state.epics = epics;
        state.tasks = tasks;
        state.phase = task_phase(0, TaskStage::Planning);
        let mut outcome = StepOutcome::new("plan", state);
        outcome.events.push(EngineEvent::AgentFinished {
            agent: AgentRole::TechLead,
            step: d.state.step + 1,
            summary,
        });
        Ok(outcome)
    }

    async fn planning_step(
        &self,
        d: &Drive,
        key: &str,
        index: usize,
    ) -> Result<StepOutcome, StepStop> {
        let title = d.state.tasks[index].title.clone();
        self.agent_started(d, AgentRole::Developer, &format!("plan task: {title}"))
            .await;
        let steps = developer::plan_task(&self.ctx(d, key), index).await?;
        let mut state = d.state.clone();
        let count = steps.len();
        let task = &mut state.tasks[index];
        task.steps = steps;
        task.status = TaskStatus::InProgress;
        state.phase = task_phase(index, TaskStage::Step { step: 0 });
        let mut outcome = StepOutcome::new(format!("task {}: plan", index + 1), state);
        outcome.events.push(EngineEvent::AgentFinished {
            agent: AgentRole::Developer,
            step: d.state.step + 1,
            summary: format!("{count} step(s) for {title}"),
        });
        Ok(outcome)
    }

    async fn task_step(
        &self,
        d: &mut Drive,
        key: &str,
        index: usize,
        step: usize,
    ) -> Result<StepOutcome, StepStop> {
        let action = d.state.tasks[index].steps[step].action.clone();
        match action {
            StepAction::WriteFile { .. } => self.write_step(d, key, index, step).await,
            StepAction::RunCommand {
                argv,
                purpose,
                timeout_secs,
            } => {
                let approved = d.state.tasks[index].steps[step].approved;
                self.command_step(
                    d,
                    key,
                    index,
                    Some(step),
                    &argv,
                    &purpose,
                    Duration::from_secs(timeout_secs),
                    approved,
                )
                .await
            }
            StepAction::AskHuman {
                question,
                default_answer,
            } => {
                let mut outcome = StepOutcome::new(
                    format!("task {}: step {}: ask", index + 1, step + 1),
                    d.state.clone(),
                );
                outcome.ask = Some(Ask {
                    spec: QuestionSpec {
                        text: question,
                        buttons: Vec::new(),
                        default_answer: Some(default_answer),
                    },
                    purpose: QuestionPurpose::HumanStep { task: index, step },
                    resume: task_phase(index, TaskStage::Step { step: step + 1 }),
                });
                Ok(outcome)
            }
        }
    }

    /// Consecutive file steps with distinct paths, written by parallel code writers and
    /// merged in step order.
    async fn write_step(
        &self,
        d: &Drive,
        key: &str,
        index: usize,
        first: usize,
    ) -> Result<StepOutcome, StepStop> {
        let task = &d.state.tasks[index];
        let mut batch: Vec<(usize, String, String)> = Vec::new();
        for (n, s) in task.steps.iter().enumerate().skip(first) {
            let StepAction::WriteFile { path, instructions } = &s.action else {
                break;
            };
            if s.status != StepStatus::Pending
                || batch.len() >= self.config.max_parallel_writers.max(1)
                || batch.iter().any(|(_, p, _)| p == path)
            {
                break;
            }
            batch.push((n, path.clone(), instructions.clone()));
        }
        let paths: Vec<&str> = batch.iter().map(|(_, p, _)| p.as_str()).collect();
        self.agent_started(d, AgentRole::CodeWriter, &paths.join(", "))
            .await;
        let ctx = self.ctx(d, key);
        let results = join_all(batch.iter().map(|(_, path, instructions)| {
            code_writer::write_file(&ctx, index, path, instructions)
        }))
        .await;
        let mut state = d.state.clone();
        let last = batch.last().map_or(first, |(n, _, _)| *n);
        let mut outcome = StepOutcome::new(
            format!("task {}: write {}", index + 1, paths.join(", ")),
            RunState::clone(&state),
        );
        for ((n, path, _), result) in batch.iter().zip(results) {
            let content = result?;
            state.tasks[index].steps[*n].status = StepStatus::Done;
            outcome
                .writes
                .insert(path.clone(), Some(content.into_bytes()));
            outcome.events.push(EngineEvent::AgentFinished {
                agent: AgentRole::CodeWriter,
                step: d.state.step + 1,
                summary: format!("wrote {path}"),
            });
        }
        state.phase = task_phase(index, TaskStage::Step { step: last + 1 });
        outcome.state = state;
        Ok(outcome)
    }

    async fn verify_step(
        &self,
        d: &mut Drive,
        key: &str,
        index: usize,
    ) -> Result<StepOutcome, StepStop> {
        let task = &d.state.tasks[index];
        let argv = task.test_command.clone();
        if argv.is_empty() {
            return Err(StepStop::Outcome(RunOutcome::Failed {
                reason: format!("task {:?} has no verification command", task.title),
            }));
        }
        let purpose = format!("check the definition of done: {}", task.definition_of_done);
        let approved = task.verify_approved;
        self.command_step(
            d,
            key,
            index,
            None,
            &argv,
            &purpose,
            Duration::from_secs(300),
            approved,
        )
        .await
    }

    /// Runs a command (a planned step, or the task's verification when `step` is `None`) and
    /// turns its result into the next phase.
    #[allow(clippy::too_many_arguments)]
    async fn command_step(
        &self,
        d: &mut Drive,
        key: &str,
        index: usize,
        step: Option<usize>,
        argv: &[String],
        purpose: &str,
        timeout: Duration,
        approved: bool,
    ) -> Result<StepOutcome, StepStop> {
        let what = match step {
            Some(s) => format!("task {}: step {}", index + 1, s + 1),
            None => format!("task {}: verify", index + 1),
        };
        let mut state = d.state.clone();
        // A model's `npm install x` / `pip install x` is the install phase's to run.
        let request = install::install_request(argv);
        let decision = match &request {
            Some(_) if self.deps().runner.can_install() => CommandDecision::Allow,
            Some(_) => CommandDecision::Deny {
                reason: "this server cannot install packages (no registry is reachable from its sandbox)"
                    .into(),
            },
            None => self.deps().runner.decide(argv),
        };
        match decision {
            CommandDecision::Allow => {}
            CommandDecision::Deny { reason } => {
                let mut outcome = StepOutcome::new(format!("{what}: denied"), state);
                outcome.events.push(EngineEvent::CommandSkipped {
                    argv: argv.to_vec(),
                    reason: reason.clone(),
                });
                match step {
                    Some(s) => {
                        let st = &mut outcome.state.tasks[index].steps[s];
                        st.status = StepStatus::Skipped;
                        st.note = Some(format!("denied by the sandbox policy: {reason}"));
                    }
                    None => {
                        outcome.state.phase = Phase::Failed {
                            reason: format!(
                                "the verification command `{}` is denied by the sandbox policy: {reason}",
                                argv.join(" ")
                            ),
                        };
                    }
                }
                return Ok(outcome);
            }
            CommandDecision::AskHuman { reason } if !approved => {
                let mut outcome = StepOutcome::new(format!("{what}: approval"), state);
                outcome.ask = Some(Ask {
                    spec: QuestionSpec {
                        text: format!("May I run `{}`? ({reason})", argv.join(" ")),
                        buttons: vec!["run".into(), "skip".into()],
                        default_answer: Some("skip".into()),
                    },
                    purpose: QuestionPurpose::ApproveCommand { task: index, step },
                    resume: d.state.phase.clone(),
                });
                return Ok(outcome);
            }
            CommandDecision::AskHuman { .. } => {}
        }

        self.agent_started(d, AgentRole::Executor, &argv.join(" "))
            .await;
        let (ran, result, writes, install_failed) = self
            .execute(d, argv, purpose, timeout, approved, request.as_ref())
            .await?;
        let argv = ran.as_slice();
        let ctx = self.ctx(d, key);
        let (success, analysis) = executor::judge(&ctx, argv, purpose, &result).await?;
        drop(ctx);
        let duration_ms = u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX);
        let mut outcome = StepOutcome::new(
            format!("{what}: {}", if success { "passed" } else { "failed" }),
            RunState::clone(&state),
        );
        outcome.writes = writes;
        // A failed install was reported as it finished; the command itself did not run.
        if !install_failed {
            outcome.events.push(EngineEvent::CommandFinished {
                argv: argv.to_vec(),
                exit_code: result.exit_code,
                timed_out: result.timed_out,
                duration_ms,
                success,
                analysis: analysis.clone(),
            });
        }
        let tail = executor::output_tail(&result);
        if success {
            match step {
                Some(s) => {
                    let st = &mut state.tasks[index].steps[s];
                    st.status = StepStatus::Done;
                    st.note = Some("succeeded".into());
                    state.phase = task_phase(index, TaskStage::Step { step: s + 1 });
                }
                None => {
                    state.tasks[index].verification = Some(tail);
                    state.phase = task_phase(index, TaskStage::Completing);
                }
            }
            outcome.state = state;
            return Ok(outcome);
        }
        let failure = CommandFailure {
            argv: argv.to_vec(),
            exit_code: result.exit_code,
            timed_out: result.timed_out,
            output: tail,
            analysis: analysis.unwrap_or_else(|| {
                let limits: Vec<&str> = result
                    .blocked
                    .iter()
                    .filter(|b| b.kind != SandboxBlock::EGRESS_REFUSED)
                    .map(|b| b.detail.as_str())
                    .collect();
                match result.exit_code {
                    _ if !limits.is_empty() => limits.join("; "),
                    Some(code) if !result.timed_out => format!("exited with code {code}"),
                    _ => "did not finish".into(),
                }
            }),
        };
        let retry = match step {
            Some(s) => Retry::Step { step: s },
            None => Retry::Verify,
        };
        self.on_failure(d, &mut state, &mut outcome, index, failure, retry);
        outcome.state = state;
        Ok(outcome)
    }

    /// Records a failure and decides: debug it, or stop because it keeps happening.
    fn on_failure(
        &self,
        d: &Drive,
        state: &mut RunState,
        outcome: &mut StepOutcome,
        index: usize,
        failure: CommandFailure,
        retry: Retry,
    ) {
        let signature = guards::failure_signature(&failure);
        let seen = guards::count_failure(&mut state.guard, &signature);
        let attempt = state.tasks[index].fix_attempts + 1;
        let command = failure.argv.join(" ");
        state.last_failure = Some(failure);
        let debugging = task_phase(index, TaskStage::Debugging { attempt, retry });
        let reason = if seen >= self.config.loop_threshold {
            Some(format!(
                "`{command}` failed the same way {seen} times in a row; the fixes are not working"
            ))
        } else if attempt > self.config.max_fix_attempts {
            Some(format!(
                "{} fixes of task {:?} did not make `{command}` pass",
                self.config.max_fix_attempts, state.tasks[index].title
            ))
        } else {
            None
        };
        let Some(reason) = reason else {
            state.phase = debugging;
            return;
        };
        outcome.events.push(EngineEvent::GuardTripped {
            reason: reason.clone(),
        });
        match d.run.autonomy {
            Autonomy::Auto => state.phase = Phase::Failed { reason },
            Autonomy::Interactive => {
                state.phase = debugging.clone();
                outcome.ask = Some(Ask {
                    spec: QuestionSpec {
                        text: format!("{reason}. Keep trying, or stop the run?"),
                        buttons: vec!["keep trying".into(), "stop".into()],
                        default_answer: Some("stop".into()),
                    },
                    purpose: QuestionPurpose::LoopDetected { signature },
                    resume: debugging,
                });
            }
        }
    }

    async fn debug_step(
        &self,
        d: &Drive,
        key: &str,
        index: usize,
        attempt: u32,
        retry: Retry,
    ) -> Result<StepOutcome, StepStop> {
        let Some(failure) = d.state.last_failure.clone() else {
            return Err(StepStop::Outcome(RunOutcome::Failed {
                reason: "debugging without a recorded failure".into(),
            }));
        };
        self.agent_started(
            d,
            AgentRole::Troubleshooter,
            &format!("fix attempt {attempt}: {}", failure.argv.join(" ")),
        )
        .await;
        let ctx = self.ctx(d, key);
        let plan = troubleshooter::diagnose(&ctx, index, &failure, attempt).await?;
        let results = join_all(plan.changes.iter().map(|change| {
            code_writer::write_file(&ctx, index, &change.path, &change.instructions)
        }))
        .await;
        let mut state = d.state.clone();
        let mut outcome = StepOutcome::new(
            format!("task {}: fix {attempt}", index + 1),
            RunState::clone(&state),
        );
        outcome.events.push(EngineEvent::AgentFinished {
            agent: AgentRole::Troubleshooter,
            step: d.state.step + 1,
            summary: plan.diagnosis.clone(),
        });
        for (change, result) in plan.changes.iter().zip(results) {
            let content = result?;
            outcome
                .writes
                .insert(change.path.clone(), Some(content.into_bytes()));
            outcome.events.push(EngineEvent::AgentFinished {
                agent: AgentRole::CodeWriter,
                step: d.state.step + 1,
                summary: format!("wrote {}", change.path),
            });
        }
        state.tasks[index].fix_attempts = attempt;
        state.phase = match retry {
            Retry::Step { step } => task_phase(index, TaskStage::Step { step }),
            Retry::Verify => task_phase(index, TaskStage::Verifying),
        };
        outcome.state = state;
        Ok(outcome)
    }

    async fn complete_step(
        &self,
        d: &Drive,
        key: &str,
        index: usize,
    ) -> Result<StepOutcome, StepStop> {
        let title = d.state.tasks[index].title.clone();
        self.agent_started(d, AgentRole::TaskCompleter, &title)
            .await;
        let verification = d.state.tasks[index]
            .verification
            .clone()
            .unwrap_or_default();
        let summary = task_completer::complete(&self.ctx(d, key), index, &verification).await?;
        let mut state = d.state.clone();
        let task = &mut state.tasks[index];
        task.status = TaskStatus::Done;
        task.summary = Some(summary.clone());
        state.last_failure = None;
        state.phase = if index + 1 < state.tasks.len() {
            task_phase(index + 1, TaskStage::Planning)
        } else {
            Phase::NeedsReadme
        };
        let mut outcome = StepOutcome::new(format!("task {}: done", index + 1), state);
        outcome.events.push(EngineEvent::AgentFinished {
            agent: AgentRole::TaskCompleter,
            step: d.state.step + 1,
            summary,
        });
        Ok(outcome)
    }

    async fn readme_step(&self, d: &Drive, key: &str) -> Result<StepOutcome, StepStop> {
        self.agent_started(d, AgentRole::TechnicalWriter, "README.md")
            .await;
        let readme = technical_writer::readme(&self.ctx(d, key)).await?;
        let mut state = d.state.clone();
        state.phase = Phase::Done;
        let mut outcome = StepOutcome::new("readme", state);
        outcome
            .writes
            .insert("README.md".into(), Some(readme.into_bytes()));
        outcome.events.push(EngineEvent::AgentFinished {
            agent: AgentRole::TechnicalWriter,
            step: d.state.step + 1,
            summary: "wrote README.md".into(),
        });
        Ok(outcome)
    }

    /// Materialises the current files, brings the dependencies in step (the install phase),
    /// runs the command, logs it, and scans what they changed. Returns the argv that ran last
    /// (the command's, or the install command that failed instead, which the last value
    /// says). An install `request` is run by the install phase alone.
    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        d: &Drive,
        argv: &[String],
        purpose: &str,
        timeout: Duration,
        approved: bool,
        request: Option<&InstallRequest>,
    ) -> Result<
        (
            Vec<String>,
            CommandResult,
            std::collections::BTreeMap<String, Option<Vec<u8>>>,
            bool,
        ),
        StepStop,
    > {
        let dir = d.workdir(&self.deps().workdir);
        let files = d.files.clone();
        let target = dir.clone();
        tokio::task::spawn_blocking(move || {
            materialize(
                &files.snapshot,
                &files.blobs,
                &target,
                &MaterializeOptions::default(),
            )
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .map_err(EngineError::from)?;

        let failed_install = self.install_phase(d, &dir, request).await?;
        let install_failed = failed_install.is_some();
        let (ran, result) = match (failed_install, request) {
            (Some(failed), _) => (failed.argv, failed.result),
            (None, Some(_)) => (
                argv.to_vec(),
                CommandResult {
                    exit_code: Some(0),
                    stdout: "installed by the install phase\n".into(),
                    stderr: String::new(),
                    timed_out: false,
                    duration: Duration::ZERO,
                    blocked: Vec::new(),
                },
            ),
            (None, None) => (
                argv.to_vec(),
                self.run_command(d, &dir, argv, purpose, timeout, approved)
                    .await?,
            ),
        };
        let writes = self.changes(d, &dir, &result).await?;
        Ok((ran, result, writes, install_failed))
    }

    /// Runs one command in `dir` and logs it.
    async fn run_command(
        &self,
        d: &Drive,
        dir: &std::path::Path,
        argv: &[String],
        purpose: &str,
        timeout: Duration,
        approved: bool,
    ) -> Result<CommandResult, StepStop> {
        d.bus.emit(EngineEvent::CommandStarted {
            argv: argv.to_vec(),
            purpose: purpose.to_owned(),
        });
        let mut live = d.bus.output_sink();
        let mut output = |stream, text: &str| live.push(stream, text);
        let cancel: &CancellationToken = &d.cancel;
        let result = self
            .deps()
            .runner
            .run(dir, argv, timeout, approved, &mut output, cancel)
            .await
            .map_err(EngineError::from)?;
        live.flush();
        if cancel.is_cancelled() {
            return Err(StepStop::Outcome(RunOutcome::Cancelled));
        }
        for block in &result.blocked {
            d.bus.emit(EngineEvent::SandboxBlocked {
                kind: block.kind.clone(),
                detail: block.detail.clone(),
            });
        }
        self.deps()
            .store
            .record_command(d.run.id, &result.record(argv))
            .await?;
        Ok(result)
    }

    /// What the commands changed in `dir`, as writes of the step's checkpoint.
    async fn changes(
        &self,
        d: &Drive,
        dir: &std::path::Path,
        result: &CommandResult,
    ) -> Result<std::collections::BTreeMap<String, Option<Vec<u8>>>, StepStop> {
        if result.over_quota() {
            // Nothing of a command that left the workspace over its quota is kept; the next
            // command's materialisation prunes what it wrote.
            return Ok(std::collections::BTreeMap::new());
        }
        let tracked = d.files.snapshot.clone();
        let dir = dir.to_path_buf();
        let found =
            tokio::task::spawn_blocking(move || scan(&dir, &ScanOptions::default(), &tracked))
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))?
                .map_err(EngineError::from)?;
        let mut writes = std::collections::BTreeMap::new();
        for change in d.files.snapshot.diff(&found.snapshot) {
            let content = match &change.kind {
                ChangeKind::Added { hash } | ChangeKind::Modified { new: hash, .. } => {
                    found.blobs.blob(hash).map(|b| b.to_vec())
                }
                ChangeKind::Deleted { .. } => None,
            };
            writes.insert(change.path.as_str().to_owned(), content);
        }
        Ok(writes)
    }
}
