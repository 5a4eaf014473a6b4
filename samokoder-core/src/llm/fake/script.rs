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
    /// The developer also makes `src/server.js` answer protocol upgrades (a WebSocket's
    /// handshake) by echoing what arrives: the preview's relay of upgrades has something to
    /// relay.
    pub echo_upgrades: bool,
    /// Build [`FULL_STACK_DESCRIPTION`] instead: the `fullstack-ts` template with `zod` added
    /// (by the architect, and a developer's `npm install zod`), used by a new
    /// `server/validation.ts` with its tests and by the API's todo route.
    pub full_stack: bool,
}

/// The app [`Script::full_stack`] builds.
pub const FULL_STACK_DESCRIPTION: &str =
    "A todo app with login, a React front end, an API and SQLite; todo titles are validated.";

/// The full-stack app's validation module.
pub const VALIDATION_TS: &str = "import { z } from 'zod';\n\n/** A todo's title: trimmed, 1 to 200 characters. */\nexport const todoTitle = z.string().trim().min(1).max(200);\n";

const VALIDATION_TEST_TS: &str = "import { expect, test } from 'vitest';\nimport { todoTitle } from './validation.ts';\n\ntest('titles are trimmed and bounded', () => {\n  expect(todoTitle.parse('  Buy milk ')).toBe('Buy milk');\n  expect(todoTitle.safeParse('   ').success).toBe(false);\n  expect(todoTitle.safeParse('x'.repeat(201)).success).toBe(false);\n});\n";

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
        if self.full_stack {
            return self.full_stack_answer(request);
        }
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
            if self.echo_upgrades {
                steps.as_array_mut().unwrap().push(json!({
                    "kind": "write_file", "path": "src/server.js",
                    "instructions": "Answer upgrade requests with 101 and echo the bytes."
                }));
            }
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

    /// The answers of [`Script::full_stack`].
    fn full_stack_answer(&self, request: &FakeRequest) -> FakeReply {
        let system = role(request);
        let user = user(request);
        let reply = |value: serde_json::Value| FakeReply::json(&value);
        if system.starts_with("You are the spec writer") {
            if user.starts_with("# Task: clarifying questions") {
                return reply(json!({ "questions": [] }));
            }
            return reply(json!({
                "summary": "A todo list per account, in the browser, kept in SQLite.",
                "features": [
                    "Accounts: register, sign in and out",
                    "Each account's todos: add, complete, delete",
                    "Titles are trimmed and 1 to 200 characters"
                ],
                "constraints": ["React front end, an API under /api, SQLite"],
                "complexity": "simple"
            }));
        }
        if system.starts_with("You are the architect") {
            return reply(json!({
                "summary": "The fullstack-ts template: React in src/, Express in server/, SQLite; zod validates input.",
                "template": "fullstack-ts",
                "stack": ["TypeScript", "React", "Vite", "Express", "SQLite", "zod"],
                "dependencies": [{"name": "zod", "purpose": "validate request bodies"}]
            }));
        }
        if system.starts_with("You are the tech lead") {
            return reply(json!({"epics": [{
                "title": "Validation",
                "description": "Validate what the API is sent.",
                "tasks": [{
                    "title": "Validate todo titles with zod",
                    "description": "A todoTitle schema in server/validation.ts used by POST /api/todos.",
                    "definition_of_done": "npm run check passes, with tests of the schema.",
                    "test_command": null
                }]
            }]}));
        }
        if system.starts_with("You are a full-stack developer") {
            return reply(json!({ "steps": [
                {"kind": "run_command", "argv": ["npm", "install", "zod"],
                 "purpose": "add zod", "timeout_secs": 300},
                {"kind": "write_file", "path": "server/validation.ts",
                 "instructions": "Export todoTitle, a zod schema: a trimmed string of 1 to 200 characters."},
                {"kind": "write_file", "path": "server/validation.test.ts",
                 "instructions": "Test todoTitle: trims, refuses blank and too long titles."},
                {"kind": "write_file", "path": "server/app.ts",
                 "instructions": "Validate the title of POST /api/todos with todoTitle."}
            ]}));
        }
        if system.starts_with("You are the code writer") {
            if user.starts_with("# Task: create `server/validation.ts`") {
                return FakeReply::text(format!("```ts\n{VALIDATION_TS}```\n"));
            }
            if user.starts_with("# Task: create `server/validation.test.ts`") {
                return FakeReply::text(format!("```ts\n{VALIDATION_TEST_TS}```\n"));
            }
            if user.starts_with("# Task: change `server/app.ts`") {
                return FakeReply::text(concat!(
                    "<<<<<<< SEARCH\n",
                    "import type { Db } from './db.ts';\n",
                    "=======\n",
                    "import type { Db } from './db.ts';\n",
                    "import { todoTitle } from './validation.ts';\n",
                    ">>>>>>> REPLACE\n",
                    "<<<<<<< SEARCH\n",
                    "    const title = typeof req.body?.title === 'string' ? req.body.title.trim() : '';\n",
                    "    if (!title || title.length > 200) {\n",
                    "=======\n",
                    "    const parsed = todoTitle.safeParse(req.body?.title);\n",
                    "    const title = parsed.success ? parsed.data : '';\n",
                    "    if (!parsed.success) {\n",
                    ">>>>>>> REPLACE\n",
                ));
            }
        }
        if system.starts_with("You are the executor") {
            return reply(json!({"success": true, "analysis": "the checks passed"}));
        }
        if system.starts_with("You are the task completer") {
            return reply(
                json!({"summary": "Titles are validated with zod in server/validation.ts."}),
            );
        }
        if system.starts_with("You are the technical writer") {
            return FakeReply::text(
                "```markdown\n# Todo app\n\n`npm ci`, then `npm run check`; `npm run build && npm start` serves it.\n```\n",
            );
        }
        FakeReply::error(
            400,
            "unexpected",
            "invalid_request_error",
            "the full-stack script has no answer",
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
        if user.starts_with("# Task: change `src/server.js`") {
            return FakeReply::text(concat!(
                "<<<<<<< SEARCH\n",
                "const server = http.createServer(createApp());\n",
                "=======\n",
                "const server = http.createServer(createApp());\n",
                "// Upgrades (a WebSocket's handshake): accept, then echo what arrives.\n",
                "server.on('upgrade', (req, socket) => {\n",
                "  socket.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: echo\\r\\nConnection: Upgrade\\r\\n\\r\\n');\n",
                "  socket.pipe(socket);\n",
                "});\n",
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
