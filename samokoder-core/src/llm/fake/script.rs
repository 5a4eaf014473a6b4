//! A scripted "model" that builds one small app through every agent role, for end-to-end tests
//! of the engine, the server and the client.
//!
//! [`Script::answer`] looks at which role's system prompt a request carries and which task its
//! user prompt names, and answers the way a model would. The app it builds: the `node-api`
//! starter template plus a `GET /api/stats` endpoint with its own module and tests, which the
//! executor runs with `npm test`. Flags make the model ask a question, write a bug first, get
//! stuck, stream slowly or plan a risky command, for the paths a test wants to exercise.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use samokoder_core::llm::fake::FakeLlm;
//! use samokoder_core::llm::fake::script::Script;
//!
//! let fake = FakeLlm::start().await.unwrap();
//! let script = Script { ask_question: true, ..Script::default() };
//! fake.respond_with(move |request| script.answer(request));
//! # }
//! ```

use std::time::Duration;

use serde_json::json;

use super::{FakeReply, FakeRequest};

/// A description of the app the script builds, for runs driven by it.
pub const DESCRIPTION: &str =
    "A small JSON API for a todo list, with an endpoint that reports how many items there are.";

/// The correct `src/stats.js`.
pub const STATS_GOOD: &str = "'use strict';\n\nfunction countItems(items) { return items.length; }\n\nmodule.exports = { countItems };\n";
/// The off-by-one `src/stats.js` of [`Script::buggy_first`].
pub const STATS_BUGGY: &str = "'use strict';\n\nfunction countItems(items) { return items.length + 1; }\n\nmodule.exports = { countItems };\n";

const STATS_TEST: &str = "'use strict';\n\nconst { test } = require('node:test');\nconst assert = require('node:assert/strict');\nconst { countItems } = require('../src/stats');\n\ntest('countItems counts the items', () => {\n  assert.equal(countItems([{}, {}]), 2);\n  assert.equal(countItems([]), 0);\n});\n";

/// How the scripted model behaves.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// The spec writer asks one clarifying question.
    pub ask_question: bool,
    /// The first version of `src/stats.js` is off by one.
    pub buggy_first: bool,
    /// The troubleshooter's fix changes nothing (a model stuck in a loop).
    pub useless_fix: bool,
    /// The test file is streamed slowly (for killing a drive mid-stream).
    pub slow_test_file: bool,
    /// The developer also plans `npm publish`, which the runner's policy wants approved.
    pub risky_command: bool,
}

fn role(request: &FakeRequest) -> String {
    request
        .messages()
        .first()
        .map(|(_, text)| text.clone())
        .unwrap_or_default()
}

fn user(request: &FakeRequest) -> String {
    request.last_user_text().unwrap_or_default()
}

impl Script {
    /// The answer to one request (an HTTP 400 for a request the script does not know).
    pub fn answer(&self, request: &FakeRequest) -> FakeReply {
        let system = role(request);
        let user = user(request);
        let reply = |value: serde_json::Value| FakeReply::json(&value);
        if system.starts_with("You are the spec writer") {
            if user.starts_with("# Task: clarifying questions") {
                let questions = if self.ask_question {
                    json!([{
                        "question": "Should the count include items that are done?",
                        "options": ["yes", "no"],
                        "default_answer": "yes, count every item"
                    }])
                } else {
                    json!([])
                };
                return reply(json!({ "questions": questions }));
            }
            return reply(json!({
                "summary": "A JSON API for todo items that also reports how many items exist.",
                "features": ["CRUD on items under /api/items", "GET /api/stats returns {count}"],
                "constraints": ["No dependencies beyond Node's standard library"],
                "complexity": "simple"
            }));
        }
        if system.starts_with("You are the architect") {
            return reply(json!({
                "summary": "The node-api template's HTTP layer with a small stats module.",
                "template": "node-api",
                "stack": ["Node.js", "node:http", "node:test"],
                "dependencies": []
            }));
        }
        if system.starts_with("You are the tech lead") {
            return reply(json!({"epics": [{
                "title": "Statistics",
                "description": "Report on the items.",
                "tasks": [{
                    "title": "Item count endpoint",
                    "description": "Add GET /api/stats returning {count} with a countItems helper in src/stats.js.",
                    "definition_of_done": "npm test passes, including tests of countItems.",
                    "test_command": null
                }]
            }]}));
        }
        if system.starts_with("You are a full-stack developer") {
            let mut steps = json!([
                {"kind": "write_file", "path": "src/stats.js",
                 "instructions": "Export countItems(items) returning the number of items."},
                {"kind": "write_file", "path": "test/stats.test.js",
                 "instructions": "Test countItems with two items and with none."},
                {"kind": "write_file", "path": "src/app.js",
                 "instructions": "Route GET /api/stats to {count: countItems(store.list())}."}
            ]);
            if self.risky_command {
                steps.as_array_mut().unwrap().push(json!({
                    "kind": "run_command", "argv": ["npm", "publish"],
                    "purpose": "publish the package", "timeout_secs": 30
                }));
            }
            return reply(json!({ "steps": steps }));
        }
        if system.starts_with("You are the code writer") {
            return self.code(&user, request);
        }
        if system.starts_with("You are the executor") {
            let ok = !user.contains("not ok");
            return reply(json!({"success": ok, "analysis": "read the test report"}));
        }
        if system.starts_with("You are the troubleshooter") {
            return reply(json!({
                "diagnosis": "countItems adds one to the length.",
                "changes": [{"path": "src/stats.js", "instructions": "Return items.length exactly."}]
            }));
        }
        if system.starts_with("You are the task completer") {
            return reply(
                json!({"summary": "Added GET /api/stats backed by src/stats.js, with tests."}),
            );
        }
        if system.starts_with("You are the technical writer") {
            return FakeReply::text(
                "```markdown\n# Todo API\n\nRun `npm test` to test, `npm start` to serve.\n\n- `GET /api/stats`: how many items there are.\n```\n",
            );
        }
        FakeReply::error(
            400,
            "unexpected",
            "invalid_request_error",
            "the script has no answer",
        )
    }

    fn code(&self, user: &str, request: &FakeRequest) -> FakeReply {
        if user.starts_with("# Task: create `src/stats.js`") {
            let content = if self.buggy_first {
                STATS_BUGGY
            } else {
                STATS_GOOD
            };
            return FakeReply::text(format!("```js\n{content}```\n"));
        }
        if user.starts_with("# Task: create `test/stats.test.js`") {
            let text = format!("```js\n{STATS_TEST}```\n");
            if self.slow_test_file {
                let chunks: Vec<String> = text
                    .as_bytes()
                    .chunks(16)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                return FakeReply::text(text)
                    .chunks(chunks)
                    .chunk_delay(Duration::from_millis(150));
            }
            return FakeReply::text(text);
        }
        if user.starts_with("# Task: change `src/app.js`") {
            return FakeReply::text(concat!(
                "<<<<<<< SEARCH\n",
                "const { ItemStore, ValidationError } = require('./store');\n",
                "=======\n",
                "const { ItemStore, ValidationError } = require('./store');\n",
                "const { countItems } = require('./stats');\n",
                ">>>>>>> REPLACE\n",
                "<<<<<<< SEARCH\n",
                "    ['GET', '/health', () => [200, { status: 'ok' }]],\n",
                "=======\n",
                "    ['GET', '/health', () => [200, { status: 'ok' }]],\n",
                "    ['GET', '/api/stats', () => [200, { count: countItems(store.list()) }]],\n",
                ">>>>>>> REPLACE\n",
            ));
        }
        if user.starts_with("# Task: change `src/stats.js`") {
            let replacement = if self.useless_fix {
                "function countItems(items) { return items.length + 1; }\n"
            } else {
                "function countItems(items) { return items.length; }\n"
            };
            return FakeReply::text(format!(
                "<<<<<<< SEARCH\nfunction countItems(items) {{ return items.length + 1; }}\n=======\n{replacement}>>>>>>> REPLACE\n"
            ));
        }
        let _ = request;
        FakeReply::error(
            400,
            "unexpected",
            "invalid_request_error",
            "no scripted file",
        )
    }
}
