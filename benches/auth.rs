//! Costs of samokoder-auth's primitives at their production settings: argon2id hash and verify
//! at the default (OWASP) parameters, legacy bcrypt verify at cost 12, access-token sign and
//! verify, and secret-box seal and open of 1 KiB.
//!
//! Run with `cargo bench --bench auth`. Sample counts are small so the whole run takes about a
//! minute; the figures are for sizing (logins per core per second), not for micro-tuning. After
//! criterion's table it prints ratios measured in the same run, the one that matters for
//! security first: an unknown-user login must cost what a known-user login costs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use samokoder_auth::hashing::{HashParams, PasswordHasher};
use samokoder_auth::secret_box::{SecretBox, SecretBoxConfig, SecretBoxKeyConfig, associated_data};
use samokoder_auth::tokens::{SigningKeyConfig, TokenConfig, TokenIssuer};
use uuid::Uuid;

const PASSWORD: &str = "Tr1cky-Lemur-Parade";
/// bcrypt("hunter2") at cost 12: what users migrated from the original have stored.
const BCRYPT_COST_12: &str = "$2b$12$......................21jzCB1r6pN6rp5O2Ev0ejjTAboskKm";

struct Fixture {
    hasher: PasswordHasher,
    argon2_hash: String,
    issuer: TokenIssuer,
    access_token: String,
    secret_box: SecretBox,
    plaintext: Vec<u8>,
    ad: Vec<u8>,
    sealed: String,
}

fn fixture() -> Fixture {
    let hasher = PasswordHasher::new(HashParams::default()).expect("OWASP params are valid");
    let argon2_hash = hasher.hash_blocking(PASSWORD).expect("hash");
    let issuer = TokenIssuer::new(&TokenConfig {
        keys: vec![SigningKeyConfig::generate("bench")],
        ..TokenConfig::default()
    })
    .expect("token config");
    let access_token = issuer
        .issue_access(Uuid::new_v4())
        .expect("sign")
        .token
        .expose()
        .to_owned();
    let secret_box = SecretBox::new(&SecretBoxConfig {
        keys: vec![SecretBoxKeyConfig::generate("bench")],
        active_kid: None,
    })
    .expect("secret box config");
    let plaintext: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    let ad = associated_data(Uuid::new_v4(), "provider:openai");
    let sealed = secret_box.seal(&plaintext, &ad).expect("seal");
    Fixture {
        hasher,
        argon2_hash,
        issuer,
        access_token,
        secret_box,
        plaintext,
        ad,
        sealed,
    }
}

fn bench_passwords(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("password");
    group.bench_function("argon2id_hash_owasp", |b| {
        b.iter(|| f.hasher.hash_blocking(black_box(PASSWORD)).expect("hash"));
    });
    group.bench_function("argon2id_verify_owasp", |b| {
        b.iter(|| {
            f.hasher
                .verify_blocking(black_box(PASSWORD), &f.argon2_hash)
                .expect("verify")
        });
    });
    group.bench_function("bcrypt_verify_cost12", |b| {
        b.iter(|| {
            f.hasher
                .verify_blocking(black_box("hunter2"), BCRYPT_COST_12)
                .expect("verify")
        });
    });
    group.finish();
}

fn bench_tokens(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("token");
    let user = Uuid::new_v4();
    group.bench_function("sign_access", |b| {
        b.iter(|| f.issuer.issue_access(black_box(user)).expect("sign"));
    });
    group.bench_function("verify_access", |b| {
        b.iter(|| {
            f.issuer
                .verify_access(black_box(&f.access_token))
                .expect("verify")
        });
    });
    group.finish();
}

fn bench_secret_box(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("secret_box_1KiB");
    group.bench_function("seal", |b| {
        b.iter(|| {
            f.secret_box
                .seal(black_box(&f.plaintext), &f.ad)
                .expect("seal")
        });
    });
    group.bench_function("open", |b| {
        b.iter(|| {
            f.secret_box
                .open(black_box(&f.sealed), &f.ad)
                .expect("open")
        });
    });
    group.finish();
}

/// Median wall time of `runs` calls.
fn median(runs: usize, mut work: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[runs / 2]
}

fn print_ratios(f: &Fixture) {
    let known = median(21, || {
        let _ = black_box(f.hasher.verify_blocking(PASSWORD, &f.argon2_hash));
    });
    let unknown = median(21, || {
        let _ = black_box(f.hasher.verify_unknown_user_blocking(PASSWORD));
    });
    let bcrypt = median(5, || {
        let _ = black_box(f.hasher.verify_blocking("hunter2", BCRYPT_COST_12));
    });
    let verify_token = median(1001, || {
        let _ = black_box(f.issuer.verify_access(&f.access_token));
    });
    println!("\nratios (medians in this run)");
    println!(
        "  unknown-user / known-user argon2id verify: {:.3}  ({unknown:?} vs {known:?}; ~1.0 = no timing oracle)",
        unknown.as_secs_f64() / known.as_secs_f64()
    );
    println!(
        "  bcrypt cost 12 / argon2id OWASP verify:    {:.2}  ({bcrypt:?} vs {known:?})",
        bcrypt.as_secs_f64() / known.as_secs_f64()
    );
    println!(
        "  argon2id verify / token verify:            {:.0}  ({known:?} vs {verify_token:?})",
        known.as_secs_f64() / verify_token.as_secs_f64()
    );
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let f = fixture();
    bench_passwords(&mut criterion, &f);
    bench_tokens(&mut criterion, &f);
    bench_secret_box(&mut criterion, &f);
    criterion.final_summary();
    print_ratios(&f);
}
