//! `/v1/projects/{project_id}/runs/*`: generation runs, their events and questions.

use samokoder_core::api::runs::{
    AnswerRequest, QuestionListResponse, QuestionResponse, RunCreateRequest, RunListQuery,
    RunListResponse, RunResponse, RunResumeRequest,
};
use uuid::Uuid;

use crate::events::{EventStreamOptions, RunEvents};
use crate::operations as ops;
use crate::{Client, Error};

/// Run operations; from [`Client::runs`].
#[derive(Debug, Clone, Copy)]
pub struct Runs<'a> {
    pub(crate) client: &'a Client,
}

impl Runs<'_> {
    /// `POST /v1/projects/{project_id}/runs`: starts a run (queued for a worker). A project
    /// has at most one active run (409 otherwise).
    ///
    /// ```no_run
    /// use futures::TryStreamExt;
    /// use samokoder_core::api::runs::{RunAutonomy, RunCreateRequest};
    ///
    /// # async fn demo(client: samokoder_client::Client, project: uuid::Uuid) -> Result<(), samokoder_client::Error> {
    /// let run = client
    ///     .runs()
    ///     .create(project, &RunCreateRequest {
    ///         description: "A todo list API with tests".into(),
    ///         template: None,
    ///         autonomy: RunAutonomy::Auto,
    ///         budget: None,
    ///         models: Default::default(),
    ///     })
    ///     .await?;
    /// let mut events = client.runs().events(project, run.id);
    /// while let Some(event) = events.try_next().await? {
    ///     println!("{} {}", event.seq, event.kind);
    /// }
    /// println!("{}", client.runs().get(project, run.id).await?.status);
    /// # Ok(()) }
    /// ```
    pub async fn create(
        &self,
        project_id: Uuid,
        request: &RunCreateRequest,
    ) -> Result<RunResponse, Error> {
        let project = project_id.to_string();
        self.client
            .call(&ops::CREATE_RUN, &[&project])
            .json(request)
            .send_json()
            .await
    }

    /// `GET /v1/projects/{project_id}/runs`: the project's runs, newest first.
    pub async fn list(
        &self,
        project_id: Uuid,
        query: &RunListQuery,
    ) -> Result<RunListResponse, Error> {
        let project = project_id.to_string();
        self.client
            .call(&ops::LIST_RUNS, &[&project])
            .query(query)
            .send_json()
            .await
    }

    /// `GET /v1/projects/{project_id}/runs/{run_id}`.
    pub async fn get(&self, project_id: Uuid, run_id: Uuid) -> Result<RunResponse, Error> {
        let (project, run) = (project_id.to_string(), run_id.to_string());
        self.client
            .call(&ops::GET_RUN, &[&project, &run])
            .send_json()
            .await
    }

    /// `POST /v1/projects/{project_id}/runs/{run_id}/cancel`: stops the run.
    pub async fn cancel(&self, project_id: Uuid, run_id: Uuid) -> Result<RunResponse, Error> {
        let (project, run) = (project_id.to_string(), run_id.to_string());
        self.client
            .call(&ops::CANCEL_RUN, &[&project, &run])
            .send_json()
            .await
    }

    /// `POST /v1/projects/{project_id}/runs/{run_id}/resume`: continues a `budget_exhausted`
    /// run, usually with a raised budget.
    pub async fn resume(
        &self,
        project_id: Uuid,
        run_id: Uuid,
        request: &RunResumeRequest,
    ) -> Result<RunResponse, Error> {
        let (project, run) = (project_id.to_string(), run_id.to_string());
        self.client
            .call(&ops::RESUME_RUN, &[&project, &run])
            .json(request)
            .send_json()
            .await
    }

    /// `GET /v1/projects/{project_id}/runs/{run_id}/events`: the run's events from the first,
    /// followed live until the run finishes; see [`RunEvents`].
    pub fn events(&self, project_id: Uuid, run_id: Uuid) -> RunEvents {
        self.events_with(project_id, run_id, EventStreamOptions::default())
    }

    /// [`events`](Self::events) with a starting point and reconnection settings.
    pub fn events_with(
        &self,
        project_id: Uuid,
        run_id: Uuid,
        options: EventStreamOptions,
    ) -> RunEvents {
        RunEvents::follow(self.client.clone(), project_id, run_id, options)
    }

    /// `GET /v1/projects/{project_id}/runs/{run_id}/questions`: the unanswered questions.
    pub async fn questions(
        &self,
        project_id: Uuid,
        run_id: Uuid,
    ) -> Result<QuestionListResponse, Error> {
        let (project, run) = (project_id.to_string(), run_id.to_string());
        self.client
            .call(&ops::LIST_QUESTIONS, &[&project, &run])
            .send_json()
            .await
    }

    /// `POST /v1/projects/{project_id}/runs/{run_id}/questions/{question_id}/answer`: answers
    /// a question (one of its buttons or any text); the run continues.
    pub async fn answer(
        &self,
        project_id: Uuid,
        run_id: Uuid,
        question_id: Uuid,
        answer: &str,
    ) -> Result<QuestionResponse, Error> {
        let (project, run, question) = (
            project_id.to_string(),
            run_id.to_string(),
            question_id.to_string(),
        );
        self.client
            .call(&ops::ANSWER_QUESTION, &[&project, &run, &question])
            .json(&AnswerRequest {
                answer: answer.to_owned(),
            })
            .send_json()
            .await
    }
}
