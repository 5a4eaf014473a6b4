//! `samokoder run`: start a run and follow it, with live progress and the run's questions
//! asked in the terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use samokoder_client::EventStreamOptions;
use samokoder_client::api::events::RunEvent;
use samokoder_client::api::projects::{ProjectCreateRequest, ProjectListQuery};
use samokoder_client::api::runs::{
    QuestionResponse, RunAutonomy, RunBudget, RunCreateRequest, RunResponse, RunStatus,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::output::shorten;
use crate::{Context, Failure, read_stdin_line};

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// What to build, in plain language.
    description: String,
    /// Run in this project.
    #[arg(long, conflicts_with = "name")]
    project: Option<Uuid>,
    /// Run in the project with this name, creating it when you have none
    /// [default: a new project named after the description].
    #[arg(long)]
    name: Option<String>,
    /// Start from this template (e.g. node-api) [default: the architect chooses].
    #[arg(long)]
    template: Option<String>,
    /// Answer every question with its default answer, without asking.
    #[arg(long)]
    auto: bool,
    /// Start the run, print it and return without following it.
    #[arg(long)]
    detach: bool,
    #[command(flatten)]
    budget: BudgetArgs,
}

/// A run's limits; each one left out takes the server's default.
#[derive(Debug, Args)]
pub(crate) struct BudgetArgs {
    /// At most this many tokens (prompt plus completion).
    #[arg(long, value_name = "TOKENS")]
    budget_tokens: Option<u64>,
    /// At most this cost, in US dollars (e.g. 2.50).
    #[arg(long, value_name = "USD")]
    budget_usd: Option<f64>,
    /// At most this many LLM requests.
    #[arg(long, value_name = "CALLS")]
    budget_calls: Option<u64>,
    /// At most this much working time, in seconds (waiting for your answers does not count).
    #[arg(long, value_name = "SECONDS")]
    budget_time: Option<u64>,
}

impl BudgetArgs {
    /// The budget to send, `None` when no limit was given.
    pub(crate) fn budget(&self) -> Option<RunBudget> {
        let budget = RunBudget {
            tokens: self.budget_tokens,
            cost_micros: self
                .budget_usd
                .map(|usd| (usd.max(0.0) * 1_000_000.0).round() as u64),
            llm_calls: self.budget_calls,
            wall_time_secs: self.budget_time,
        };
        (budget != RunBudget::default()).then_some(budget)
    }
}

pub(crate) async fn run(context: &Context, args: RunArgs) -> Result<(), Failure> {
    context.require_session()?;
    let project_id = match (args.project, &args.name) {
        (Some(project), _) => project,
        (None, Some(name)) => project_named(context, name).await?,
        (None, None) => {
            let name = shorten(args.description.trim(), 60);
            let project = context
                .client
                .projects()
                .create(&ProjectCreateRequest {
                    name: if name.is_empty() {
                        "Samokoder app".into()
                    } else {
                        name
                    },
                    description: Some(shorten(args.description.trim(), 1000)),
                })
                .await?;
            project.id
        }
    };
    let run = context
        .client
        .runs()
        .create(
            project_id,
            &RunCreateRequest {
                description: args.description,
                template: args.template,
                autonomy: if args.auto {
                    RunAutonomy::Auto
                } else {
                    RunAutonomy::Interactive
                },
                budget: args.budget.budget(),
                models: Default::default(),
            },
        )
        .await?;
    if args.detach {
        context.out.value(&run, || {
            format!(
                "Started run {} in project {}; follow it with `samokoder runs list {}`",
                run.id, run.project_id, run.project_id
            )
        });
        return Ok(());
    }
    follow(context, project_id, run, args.auto, None).await
}

/// The id of the caller's project named exactly `name`, created when there is none.
async fn project_named(context: &Context, name: &str) -> Result<Uuid, Failure> {
    let projects = context.client.projects();
    let mut matching = projects.list_all(ProjectListQuery {
        q: Some(name.to_owned()),
        ..ProjectListQuery::default()
    });
    while let Some(project) = matching.try_next().await? {
        if project.name == name.trim() {
            return Ok(project.id);
        }
    }
    let project = projects
        .create(&ProjectCreateRequest {
            name: name.to_owned(),
            description: None,
        })
        .await?;
    Ok(project.id)
}

/// What the progress line shows.
#[derive(Default)]
struct Progress {
    agent: Option<String>,
    files: u64,
    tokens: u64,
    cost_micros: u64,
}

impl Progress {
    fn line(&self) -> String {
        format!(
            "{} · {} file(s) · {} tokens · {}",
            self.agent.as_deref().unwrap_or("queued"),
            self.files,
            self.tokens,
            dollars(self.cost_micros)
        )
    }
}

fn dollars(micros: u64) -> String {
    format!("${:.4}", micros as f64 / 1_000_000.0)
}

/// Follows `run` to its end: events (as JSON lines with `--json`, else as a progress display
/// with a line per agent, file and command), questions answered from the terminal (or from
/// standard input), and a summary. Fails with status 5 unless the run completed.
/// Follows the run's events, showing progress and asking its questions (with `auto`,
/// answering each with its default), then prints the result.
///
/// `resumed_at` is set when following a run just resumed: it keeps numbering its events after
/// its earlier stops, so the events from before that instant are passed over, and the stream
/// is opened again after each earlier stop's end event instead of ending there.
pub(crate) async fn follow(
    context: &Context,
    project_id: Uuid,
    run: RunResponse,
    auto: bool,
    resumed_at: Option<DateTime<Utc>>,
) -> Result<(), Failure> {
    let out = context.out;
    let bar = if out.is_json() {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    };
    if out.is_json() {
        out.json_line(&json!({"type": "run", "run": run}));
    } else {
        say(&bar, &format!("Run {} in project {project_id}", run.id));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
    }
    let mut progress = Progress::default();
    bar.set_message(progress.line());
    let mut asked: Vec<Uuid> = Vec::new();
    let mut events = context.client.runs().events(project_id, run.id);
    while let Some(event) = events
        .try_next()
        .await
        .inspect_err(|_| bar.finish_and_clear())?
    {
        if resumed_at.is_some_and(|resumed| event.at < resumed) {
            if event.ends_stream() {
                let options = EventStreamOptions {
                    after: Some(event.seq),
                    ..EventStreamOptions::default()
                };
                events = context
                    .client
                    .runs()
                    .events_with(project_id, run.id, options);
            }
            continue;
        }
        if out.is_json() {
            out.json_line(&json!({"type": "event", "event": event}));
        }
        show(&bar, &mut progress, &event, out.is_json());
        bar.set_message(progress.line());
        let waiting =
            event.kind == "question_asked" || event.outcome() == Some("waiting_for_human");
        if waiting {
            let pending = context.client.runs().questions(project_id, run.id).await;
            let pending = pending.inspect_err(|_| bar.finish_and_clear())?;
            for question in pending.questions {
                // Replayed events name questions answered long ago; only pending ones are
                // asked, and each once.
                if asked.contains(&question.id) {
                    continue;
                }
                asked.push(question.id);
                // An `auto` run never asks, but a resumed interactive one does: `--auto`
                // answers for the user there.
                let answer = if auto {
                    default_answer(&question)
                } else {
                    bar.suspend(|| ask(context, &question))
                };
                let answer = answer.inspect_err(|_| bar.finish_and_clear())?;
                if auto && !out.is_json() {
                    say(&bar, &format!("? {} → {answer} (default)", question.text));
                }
                context
                    .client
                    .runs()
                    .answer(project_id, run.id, question.id, &answer)
                    .await
                    .inspect_err(|_| bar.finish_and_clear())?;
            }
        }
    }
    bar.finish_and_clear();
    let last = context.client.runs().get(project_id, run.id).await?;
    if out.is_json() {
        out.json_line(&json!({"type": "result", "run": last}));
    } else {
        println!(
            "Run {} {}: {} file(s) written, {} tokens, {}{}",
            last.id,
            last.status,
            progress.files,
            last.usage.tokens,
            dollars(last.usage.cost_micros),
            last.error
                .as_deref()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default()
        );
        match last.status {
            RunStatus::Completed => {
                println!("Download it with `samokoder export {project_id}`");
            }
            RunStatus::BudgetExhausted => println!(
                "Raise the budget and continue with `samokoder runs resume {project_id} {} --budget-...`",
                last.id
            ),
            _ => {}
        }
    }
    if last.status == RunStatus::Completed {
        Ok(())
    } else {
        Err(Failure::message(
            5,
            format!("the run ended {}", last.status),
        ))
    }
}

/// Updates the progress from an event and prints the lines worth keeping.
fn show(bar: &ProgressBar, progress: &mut Progress, event: &RunEvent, quiet: bool) {
    let data = &event.data;
    let text = |key: &str| data.get(key).and_then(Value::as_str).unwrap_or_default();
    let line = match event.kind.as_str() {
        "agent_started" => {
            progress.agent = Some(text("agent").to_owned());
            Some(format!("▸ {}: {}", text("agent"), text("label")))
        }
        "file_written" => {
            let change = text("change");
            if change != "deleted" {
                progress.files += 1;
            }
            let sign = match change {
                "created" => '+',
                "deleted" => '-',
                _ => '~',
            };
            Some(format!("  {sign} {}", text("path")))
        }
        "command_started" => {
            let argv: Vec<&str> = data
                .get("argv")
                .and_then(Value::as_array)
                .map(|argv| argv.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            Some(format!("  $ {}", argv.join(" ")))
        }
        "command_finished" => {
            let ok = data.get("success").and_then(Value::as_bool) == Some(true);
            Some(format!("    {}", if ok { "ok" } else { "failed" }))
        }
        "usage" => {
            let used = data.get("budget").and_then(|b| b.get("used"));
            let number = |key: &str| {
                used.and_then(|u| u.get(key))
                    .and_then(Value::as_u64)
                    .unwrap_or_default()
            };
            progress.tokens = number("tokens");
            progress.cost_micros = number("cost_micros");
            None
        }
        "question_answered" => Some(format!(
            "  answered: {}{}",
            text("answer"),
            if data.get("by_default").and_then(Value::as_bool) == Some(true) {
                " (default)"
            } else {
                ""
            }
        )),
        "guard_tripped" => Some(format!("  ! {}", text("reason"))),
        _ => None,
    };
    if let (Some(line), false) = (line, quiet) {
        say(bar, &line);
    }
}

/// Prints a line above the progress display (or plainly when there is none, e.g. when
/// standard error is not a terminal).
fn say(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

/// Asks `question` and reads the answer: a button's number, any text, or Enter for the
/// default. With `--json` the question is printed as a JSON line and the answer read from
/// standard input the same way.
/// The answer `--auto` gives: the question's default, else its first button.
fn default_answer(question: &QuestionResponse) -> Result<String, Failure> {
    question
        .default_answer
        .clone()
        .or_else(|| question.buttons.first().cloned())
        .ok_or_else(|| {
            Failure::message(
                2,
                format!(
                    "the question \"{}\" has no default answer; answer it without --auto",
                    question.text
                ),
            )
        })
}

fn ask(context: &Context, question: &QuestionResponse) -> Result<String, Failure> {
    let default = question
        .default_answer
        .clone()
        .or_else(|| question.buttons.first().cloned());
    if context.out.is_json() {
        context
            .out
            .json_line(&json!({"type": "question", "question": question}));
    } else {
        println!("? {}", question.text);
        for (number, button) in question.buttons.iter().enumerate() {
            let mark = if Some(button) == default.as_ref() {
                " (default)"
            } else {
                ""
            };
            println!("  {}) {button}{mark}", number + 1);
        }
    }
    loop {
        if !context.out.is_json() {
            let hint = match (question.buttons.len(), &default) {
                (0, Some(default)) => format!("Answer [Enter: {default}]: "),
                (0, None) => "Answer: ".to_owned(),
                (n, _) => format!("Answer [1-{n} or text; Enter for the default]: "),
            };
            print!("{hint}");
            let _ = std::io::stdout().flush();
        }
        let line = tokio::task::block_in_place(|| read_stdin_line("an answer"))?;
        if !std::io::stdin().is_terminal() && !context.out.is_json() {
            // Echo answers that came from a pipe, so a transcript reads like a session.
            println!("{line}");
        }
        if let Some(answer) = choose(&line, &question.buttons, default.as_deref()) {
            return Ok(answer);
        }
        if context.out.is_json() {
            return Err(Failure::message(2, "an answer is required"));
        }
        println!("The question needs an answer.");
    }
}

/// The answer a typed line means: a button by number, the default for an empty line, else
/// the text itself.
fn choose(line: &str, buttons: &[String], default: Option<&str>) -> Option<String> {
    let line = line.trim();
    if line.is_empty() {
        return default.map(str::to_owned);
    }
    if let Ok(number) = line.parse::<usize>()
        && (1..=buttons.len()).contains(&number)
    {
        return Some(buttons[number - 1].clone());
    }
    Some(line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_number_default_or_text() {
        let buttons = vec!["yes".to_owned(), "no".to_owned()];
        assert_eq!(choose("2", &buttons, Some("yes")).as_deref(), Some("no"));
        assert_eq!(choose("", &buttons, Some("yes")).as_deref(), Some("yes"));
        assert_eq!(choose(" 3 ", &buttons, None).as_deref(), Some("3"));
        assert_eq!(choose("maybe", &buttons, None).as_deref(), Some("maybe"));
        assert_eq!(choose("", &[], None), None);
    }

    #[test]
    fn budget_is_sent_only_when_a_limit_is_given() {
        let none = BudgetArgs {
            budget_tokens: None,
            budget_usd: None,
            budget_calls: None,
            budget_time: None,
        };
        assert_eq!(none.budget(), None);
        let some = BudgetArgs {
            budget_usd: Some(2.5),
            ..none
        };
        assert_eq!(some.budget().unwrap().cost_micros, Some(2_500_000));
    }
}
