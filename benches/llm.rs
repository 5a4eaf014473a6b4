//! The LLM layer's own cost, measured against a bare HTTP client talking to the same local fake
//! provider in the same run.
//!
//! - `request/*`: one chat request through the whole layer (routing, token counting with
//!   tiktoken, budget admission and accounting, request hash, retry loop, provider protocol,
//!   record) against one bare `reqwest` POST of the same body to the same fake, non-streaming and
//!   streaming (50 chunks).
//! - After criterion's table: the ratio layer/bare and the absolute overhead per request (target:
//!   under 1 ms), then the relay latency of streamed chunks: from the moment the fake hands a
//!   chunk to its connection to the moment the layer's sink (or the bare client) sees it.
//!
//! Run with `cargo bench --bench llm` (about a minute).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures::StreamExt;
use samokoder_core::llm::fake::{FAKE_API_KEY, FakeLlm, FakeReply};
use samokoder_core::llm::{
    AgentRole, LlmCall, LlmRecord, LlmRecorder, LlmSession, ProviderHandle, Route, RouteTable,
    async_trait,
};

const MODEL: &str = "gpt-4o-mini";
const CHUNKS: usize = 50;

/// A recorder that keeps nothing, like a store that batches writes off the request path.
struct Discard;

#[async_trait]
impl LlmRecorder for Discard {
    async fn record(&self, record: LlmRecord) {
        black_box(record);
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    fake: FakeLlm,
    session: LlmSession,
    client: reqwest::Client,
    system: String,
    user: String,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt.block_on(FakeLlm::start()).expect("fake LLM");
    // A realistic agent prompt: ~0.5 kB of instructions, ~2 kB of context; a ~0.5 kB answer.
    let answer: String = (0..CHUNKS).map(|i| format!("c{i:03}-answer ")).collect();
    fake.respond_with(move |request| {
        let reply = FakeReply::text(answer.clone()).usage(700, 130);
        if request.is_stream() {
            reply.chunks(
                answer
                    .split_inclusive(' ')
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            )
        } else {
            reply
        }
    });
    let handle = ProviderHandle::new(fake.openai_provider("openai"), 8);
    let session = LlmSession::builder(RouteTable::new(Route::new(handle, MODEL)))
        .recorder(Arc::new(Discard))
        .build();
    let fixture = Fixture {
        rt,
        fake,
        session,
        client: samokoder_core::llm::default_http_client(),
        system: "You are the developer agent of a code generator. Break the task into steps. "
            .repeat(7),
        user: "The project uses React on the front end and Express on the back end. ".repeat(30),
    };
    // Load tiktoken's BPE table (once per process) and open the connections before measuring.
    fixture.rt.block_on(async {
        fixture.layer().await;
        fixture.bare().await;
    });
    fixture
}

impl Fixture {
    fn call(&self) -> LlmCall {
        LlmCall::new(AgentRole::Developer)
            .system(self.system.clone())
            .user(self.user.clone())
    }

    /// What the layer sends, built by hand: the bare client's body.
    fn body(&self, stream: bool) -> serde_json::Value {
        let mut body = serde_json::json!({
            "model": MODEL,
            "messages": [
                {"role": "system", "content": self.system},
                {"role": "user", "content": self.user},
            ],
            "temperature": 0.5,
            "max_completion_tokens": 8192,
            "stream": stream,
        });
        if stream {
            body["stream_options"] = serde_json::json!({"include_usage": true});
        }
        body
    }

    async fn layer(&self) -> usize {
        self.session
            .chat(self.call())
            .await
            .expect("layer request")
            .response
            .text
            .len()
    }

    async fn layer_stream(&self) -> usize {
        let mut received = 0;
        let mut sink = |delta: &str| received += delta.len();
        self.session
            .chat_stream(self.call(), &mut sink)
            .await
            .expect("layer stream");
        received
    }

    async fn bare(&self) -> usize {
        let response = self
            .client
            .post(self.fake.openai_base_url() + "/chat/completions")
            .bearer_auth(FAKE_API_KEY)
            .json(&self.body(false))
            .send()
            .await
            .expect("bare request");
        let value: serde_json::Value = response.json().await.expect("bare body");
        value["choices"][0]["message"]["content"]
            .as_str()
            .map_or(0, str::len)
    }

    async fn bare_stream(&self) -> usize {
        let response = self
            .client
            .post(self.fake.openai_base_url() + "/chat/completions")
            .bearer_auth(FAKE_API_KEY)
            .json(&self.body(true))
            .send()
            .await
            .expect("bare stream");
        let mut bytes = response.bytes_stream();
        let mut received = 0;
        while let Some(chunk) = bytes.next().await {
            received += chunk.expect("bare chunk").len();
        }
        received
    }
}

fn bench_requests(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("request");
    group.bench_function("bare_reqwest", |b| {
        b.to_async(&f.rt).iter(|| f.bare());
    });
    group.bench_function("layer", |b| {
        b.to_async(&f.rt).iter(|| f.layer());
    });
    group.bench_function("bare_reqwest_stream_50_chunks", |b| {
        b.to_async(&f.rt).iter(|| f.bare_stream());
    });
    group.bench_function("layer_stream_50_chunks", |b| {
        b.to_async(&f.rt).iter(|| f.layer_stream());
    });
    group.finish();
    f.fake.reset_observations();
}

/// Median of `runs` alternating runs of `a` and `b` (alternating so drift hits both alike).
fn paired_medians<A, B, FA, FB>(f: &Fixture, runs: usize, a: A, b: B) -> (Duration, Duration)
where
    A: Fn() -> FA,
    B: Fn() -> FB,
    FA: Future<Output = usize>,
    FB: Future<Output = usize>,
{
    let mut ta = Vec::with_capacity(runs);
    let mut tb = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        black_box(f.rt.block_on(a()));
        ta.push(start.elapsed());
        let start = Instant::now();
        black_box(f.rt.block_on(b()));
        tb.push(start.elapsed());
    }
    ta.sort_unstable();
    tb.sort_unstable();
    (ta[runs / 2], tb[runs / 2])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Relay latency per chunk: fake send time to receive time, for the layer's sink and for a bare
/// byte stream, over `requests` streamed requests with chunks 5 ms apart.
fn relay_latencies(f: &Fixture, requests: usize) -> (Vec<Duration>, Vec<Duration>) {
    let chunk = |text: &str| -> Option<usize> {
        let at = text.find('c')?;
        text.get(at + 1..at + 4)?.parse().ok()
    };
    f.fake.respond_with(|_| {
        let answer: Vec<String> = (0..20).map(|i| format!("c{i:03}-x ")).collect();
        FakeReply::text("")
            .chunks(answer)
            .chunk_delay(Duration::from_millis(5))
    });
    let mut layer = Vec::new();
    let mut bare = Vec::new();
    for _ in 0..requests {
        // Through the layer.
        f.fake.reset_observations();
        let mut seen: Vec<(usize, Instant)> = Vec::new();
        f.rt.block_on(async {
            let mut sink = |delta: &str| {
                if let Some(i) = chunk(delta) {
                    seen.push((i, Instant::now()));
                }
            };
            f.session
                .chat_stream(f.call(), &mut sink)
                .await
                .expect("relay stream");
        });
        let sent = f.fake.sent_chunks();
        for (i, at) in seen {
            if let Some(s) = sent.iter().find(|c| c.index == i) {
                layer.push(at.duration_since(s.at));
            }
        }
        // Bare bytes.
        f.fake.reset_observations();
        let mut seen: Vec<(usize, Instant)> = Vec::new();
        f.rt.block_on(async {
            let response = f
                .client
                .post(f.fake.openai_base_url() + "/chat/completions")
                .bearer_auth(FAKE_API_KEY)
                .json(&f.body(true))
                .send()
                .await
                .expect("bare relay");
            let mut bytes = response.bytes_stream();
            while let Some(piece) = bytes.next().await {
                let now = Instant::now();
                let text = String::from_utf8_lossy(&piece.expect("bare relay chunk")).into_owned();
                let mut rest = text.as_str();
                while let Some(pos) = rest.find("\"content\":\"c") {
                    if let Some(i) = chunk(&rest[pos + 11..]) {
                        seen.push((i, now));
                    }
                    rest = &rest[pos + 12..];
                }
            }
        });
        let sent = f.fake.sent_chunks();
        for (i, at) in seen {
            if let Some(s) = sent.iter().find(|c| c.index == i) {
                bare.push(at.duration_since(s.at));
            }
        }
    }
    layer.sort_unstable();
    bare.sort_unstable();
    (layer, bare)
}

fn print_ratios(f: &Fixture) {
    let (bare, layer) = paired_medians(f, 301, || f.bare(), || f.layer());
    let (bare_s, layer_s) = paired_medians(f, 201, || f.bare_stream(), || f.layer_stream());
    println!("\nratios (medians of alternating runs in this run)");
    for (what, bare, layer) in [
        ("non-streaming", bare, layer),
        ("streaming, 50 chunks", bare_s, layer_s),
    ] {
        let overhead = layer.saturating_sub(bare);
        println!(
            "  layer / bare reqwest, {what}: {:.2}  ({layer:?} vs {bare:?}; overhead {overhead:?} per request, target < 1ms: {})",
            layer.as_secs_f64() / bare.as_secs_f64(),
            if overhead < Duration::from_millis(1) {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    let per_chunk = layer_s.saturating_sub(bare_s) / CHUNKS as u32;
    println!("  streaming overhead per chunk (layer - bare) / {CHUNKS}: {per_chunk:?}");
    let (layer, bare) = relay_latencies(f, 15);
    println!(
        "  relay latency per chunk, fake send -> receive ({} / {} chunks):",
        layer.len(),
        bare.len()
    );
    println!(
        "    layer sink: median {:?}, p95 {:?}   bare bytes: median {:?}, p95 {:?}   difference of medians {:?}",
        percentile(&layer, 0.5),
        percentile(&layer, 0.95),
        percentile(&bare, 0.5),
        percentile(&bare, 0.95),
        percentile(&layer, 0.5).saturating_sub(percentile(&bare, 0.5)),
    );
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let f = fixture();
    bench_requests(&mut criterion, &f);
    criterion.final_summary();
    print_ratios(&f);
}
