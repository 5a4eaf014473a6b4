//! Every operation of the Samokoder API and the client method that calls it.
//!
//! The methods build their requests from these entries (method and path template), and a test
//! compares [`OPERATIONS`] with the server's committed OpenAPI document in both directions, so
//! an endpoint without a client method — or a method whose path drifted — fails the build's
//! tests.

use reqwest::Method;

/// Whether an operation needs the session's access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Sent without credentials.
    Public,
    /// Sent with the access token; a 401 triggers one refresh and one retry.
    Session,
    /// Sent with whatever tokens the client has, but a 401 is final (logout, refresh).
    SessionOptional,
}

/// One API operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The HTTP method.
    pub method: Method,
    /// The path template, as in the OpenAPI document (`/v1/projects/{project_id}`).
    pub path: &'static str,
    /// The OpenAPI `operationId`.
    pub operation_id: &'static str,
    /// The client method that calls it, as written in Rust (`projects().get`).
    pub client_method: &'static str,
    /// Which credentials it is sent with.
    pub access: Access,
}

macro_rules! operations {
    ($($name:ident = $method:ident $path:literal $id:literal => $client:literal, $access:ident;)*) => {
        $(
            #[doc = concat!("`", stringify!($method), " ", $path, "` (`", $id, "`): `client.", $client, "`.")]
            pub const $name: Operation = Operation {
                method: Method::$method,
                path: $path,
                operation_id: $id,
                client_method: $client,
                access: Access::$access,
            };
        )*

        /// Every operation the client implements, in the order of the OpenAPI document.
        pub const OPERATIONS: &[Operation] = &[$($name),*];
    };
}

operations! {
    HEALTH = GET "/health" "health" => "health", Public;
    READY = GET "/health/ready" "ready" => "ready", Public;
    METRICS = GET "/metrics" "metrics" => "metrics", Public;

    ADMIN_SET_TIER = PUT "/v1/admin/users/{user_id}/tier" "admin_set_tier" => "admin().set_tier", Session;

    EXPORT_ANALYTICS = GET "/v1/analytics/export" "export_analytics" => "analytics().export", Session;
    RECORD_ACTION = POST "/v1/analytics/record" "record_action" => "analytics().record", Session;
    SYSTEM_ANALYTICS = GET "/v1/analytics/system" "system_analytics" => "analytics().system", Session;
    USER_ANALYTICS = GET "/v1/analytics/user" "user_analytics" => "analytics().user", Session;
    USER_ACTIONS = GET "/v1/analytics/user/actions" "user_actions" => "analytics().user_actions", Session;

    CHANGE_PASSWORD = POST "/v1/auth/change-password" "change_password" => "auth().change_password", Session;
    LOGIN = POST "/v1/auth/login" "login" => "auth().login", Public;
    LOGOUT = POST "/v1/auth/logout" "logout" => "auth().logout", SessionOptional;
    LOGOUT_ALL = POST "/v1/auth/logout-all" "logout_all" => "auth().logout_all", Session;
    ME = GET "/v1/auth/me" "me" => "auth().me", Session;
    REFRESH = POST "/v1/auth/refresh" "refresh" => "auth().refresh", SessionOptional;
    REGISTER = POST "/v1/auth/register" "register" => "auth().register", Public;

    LIST_KEYS = GET "/v1/keys" "list_keys" => "keys().list", Session;
    PUT_KEY = POST "/v1/keys" "put_key" => "keys().put", Session;
    KEYS_USAGE = GET "/v1/keys/usage" "keys_usage" => "keys().usage", Session;
    DELETE_KEY = DELETE "/v1/keys/{provider}" "delete_key" => "keys().delete", Session;
    UPDATE_KEY_SETTINGS = PUT "/v1/keys/{provider}/settings" "update_key_settings" => "keys().update_settings", Session;
    KEY_USAGE = GET "/v1/keys/{provider}/usage" "key_usage" => "keys().provider_usage", Session;

    LIST_MODELS = GET "/v1/models" "list_models" => "models().list", Public;
    PROVIDER_MODELS = GET "/v1/models/{provider}" "provider_models" => "models().provider", Public;

    LIST_NOTIFICATIONS = GET "/v1/notifications" "list_notifications" => "notifications().list", Session;
    MARK_ALL_NOTIFICATIONS_READ = POST "/v1/notifications/read-all" "mark_all_notifications_read" => "notifications().mark_all_read", Session;
    TEST_NOTIFICATION = POST "/v1/notifications/test" "test_notification" => "notifications().send_test", Session;
    DELETE_NOTIFICATION = DELETE "/v1/notifications/{notification_id}" "delete_notification" => "notifications().delete", Session;
    MARK_NOTIFICATION_READ = POST "/v1/notifications/{notification_id}/read" "mark_notification_read" => "notifications().mark_read", Session;

    LIST_PROJECTS = GET "/v1/projects" "list_projects" => "projects().list", Session;
    CREATE_PROJECT = POST "/v1/projects" "create_project" => "projects().create", Session;
    GET_PROJECT = GET "/v1/projects/{project_id}" "get_project" => "projects().get", Session;
    UPDATE_PROJECT = PUT "/v1/projects/{project_id}" "update_project" => "projects().put", Session;
    DELETE_PROJECT = DELETE "/v1/projects/{project_id}" "delete_project" => "projects().delete", Session;
    PATCH_PROJECT = PATCH "/v1/projects/{project_id}" "patch_project" => "projects().update", Session;
    ARCHIVE_PROJECT = POST "/v1/projects/{project_id}/archive" "archive_project" => "projects().archive", Session;
    UNARCHIVE_PROJECT = POST "/v1/projects/{project_id}/unarchive" "unarchive_project" => "projects().unarchive", Session;
    ARCHIVE_PROJECT_ZIP = GET "/v1/projects/{project_id}/archive" "archive_project_zip" => "files().archive", Session;
    EXPORT_PROJECT = GET "/v1/projects/{project_id}/export" "export_project" => "files().export", Session;
    LIST_FILES = GET "/v1/projects/{project_id}/files" "list_files" => "files().tree", Session;
    GET_FILE = GET "/v1/projects/{project_id}/files/{path}" "get_file" => "files().read", Session;
    START_PREVIEW = POST "/v1/projects/{project_id}/preview/start" "start_preview" => "preview().start", Session;
    PREVIEW_STATUS = GET "/v1/projects/{project_id}/preview/status" "preview_status" => "preview().status", Session;
    STOP_PREVIEW = POST "/v1/projects/{project_id}/preview/stop" "stop_preview" => "preview().stop", Session;
    OPEN_PREVIEW = POST "/v1/projects/{project_id}/preview/open" "open_preview" => "preview().open", Session;
    LIST_RUNS = GET "/v1/projects/{project_id}/runs" "list_runs" => "runs().list", Session;
    CREATE_RUN = POST "/v1/projects/{project_id}/runs" "start_run" => "runs().create", Session;
    GET_RUN = GET "/v1/projects/{project_id}/runs/{run_id}" "get_run" => "runs().get", Session;
    CANCEL_RUN = POST "/v1/projects/{project_id}/runs/{run_id}/cancel" "cancel_run" => "runs().cancel", Session;
    RUN_EVENTS = GET "/v1/projects/{project_id}/runs/{run_id}/events" "run_events" => "runs().events", Session;
    LIST_QUESTIONS = GET "/v1/projects/{project_id}/runs/{run_id}/questions" "list_questions" => "runs().questions", Session;
    ANSWER_QUESTION = POST "/v1/projects/{project_id}/runs/{run_id}/questions/{question_id}/answer" "answer_question" => "runs().answer", Session;
    RESUME_RUN = POST "/v1/projects/{project_id}/runs/{run_id}/resume" "resume_run" => "runs().resume", Session;
    LIST_STATES = GET "/v1/projects/{project_id}/states" "list_states" => "files().states", Session;
    ROLLBACK_STATE = POST "/v1/projects/{project_id}/states/{state_id}/rollback" "rollback_state" => "files().rollback", Session;

    TOKEN_USAGE = GET "/v1/usage/token" "token_usage" => "usage().tokens", Session;
    TOKEN_USAGE_PERIODS = GET "/v1/usage/token/periods" "token_usage_periods" => "usage().periods", Session;
    PROVIDER_TOKEN_USAGE = GET "/v1/usage/token/provider/{provider}" "provider_token_usage" => "usage().provider", Session;
    MODEL_TOKEN_USAGE = GET "/v1/usage/token/provider/{provider}/model/{model}" "model_token_usage" => "usage().model", Session;
    TOKEN_USAGE_SUMMARY = GET "/v1/usage/token/summary" "token_usage_summary" => "usage().summary", Session;

    SET_GITHUB_TOKEN = POST "/v1/user/github-token" "set_github_token" => "user().set_github_token", Session;
    SET_GITVERSE_TOKEN = POST "/v1/user/gitverse-token" "set_gitverse_token" => "user().set_gitverse_token", Session;
    USER_PROFILE = GET "/v1/user/profile" "user_profile" => "user().profile", Session;
    USER_TIER = GET "/v1/user/tier" "user_tier" => "user().tier", Session;

    WORKSPACE_TOKEN = POST "/v1/workspace/token" "workspace_token" => "workspace().token", Session;
    WORKSPACE_SOCKET = GET "/v1/ws/{project_id}" "project_socket" => "workspace().socket_url", Session;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The server's committed OpenAPI document.
    const OPENAPI: &str = include_str!("../../samokoder-server/openapi.json");

    fn spec_operations() -> BTreeMap<(String, String), String> {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut operations = BTreeMap::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if !["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    continue;
                }
                let id = operation["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                operations.insert((method.to_uppercase(), path.clone()), id.to_owned());
            }
        }
        operations
    }

    #[test]
    fn every_operation_of_the_openapi_document_has_a_client_method_and_back() {
        let spec = spec_operations();
        let client: BTreeMap<(String, String), String> = OPERATIONS
            .iter()
            .map(|op| {
                (
                    (op.method.to_string(), op.path.to_owned()),
                    op.operation_id.to_owned(),
                )
            })
            .collect();
        assert_eq!(
            client.len(),
            OPERATIONS.len(),
            "an operation is listed twice"
        );
        let missing: Vec<_> = spec
            .iter()
            .filter(|(k, _)| !client.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "operations without a client method: {missing:?}"
        );
        let extra: Vec<_> = client
            .iter()
            .filter(|((method, path), _)| !spec.contains_key(&(method.clone(), path.clone())))
            .collect();
        assert!(
            extra.is_empty(),
            "client methods for no operation: {extra:?}"
        );
        for (key, id) in &spec {
            assert_eq!(&client[key], id, "operationId of {key:?}");
        }
    }

    #[test]
    fn client_method_names_are_unique() {
        let mut names: Vec<_> = OPERATIONS.iter().map(|op| op.client_method).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn access_matches_the_documents_security() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        for op in OPERATIONS {
            // Needs a session: a security requirement names the session's bearer or cookie
            // scheme (the scrape token of /metrics is not a session).
            let secured = spec["paths"][op.path][op.method.as_str().to_lowercase()]["security"]
                .as_array()
                .is_some_and(|requirements| {
                    requirements
                        .iter()
                        .any(|r| r.get("bearer").is_some() || r.get("cookie").is_some())
                });
            assert_eq!(
                secured,
                op.access == Access::Session,
                "{} {} is {:?}",
                op.method,
                op.path,
                op.access
            );
        }
    }
}
