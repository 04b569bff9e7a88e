//! A libFuzzer-free fuzzer for machines without a nightly toolchain or the time to build one:
//! random mutations of a seed corpus through [`pbibatch_fuzz::parse_and_validate`], for a
//! bounded time.
//!
//! ```text
//! cargo run --release --bin mutate -- SECONDS OUT_DIR SEED_DIR...
//! ```
//!
//! An input that panics is written to `OUT_DIR/crash-*.yaml`, one that takes more than two
//! seconds to `OUT_DIR/slow-*.yaml`; inputs that reach a new kind of outcome (see
//! [`pbibatch_fuzz::outcome_signature`]) join the corpus and are written to `OUT_DIR/corpus/`.
//! Prints `key=value` figures at the end; exits 1 when anything panicked.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// YAML syntax and job-file vocabulary, inserted whole: random bytes alone rarely form a key
/// the validator knows or an anchor the parser expands.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ": ",
    "- ",
    ", ",
    "\n",
    "\n  ",
    "\n    ",
    "\n      ",
    "&a ",
    "*a",
    "&b [*a, *a, *a, *a]",
    "<<: *a\n",
    "!!str ",
    "!!int ",
    "!!binary ",
    "!!map ",
    "!custom ",
    "'",
    "\"",
    "\\u0000",
    "#",
    "|\n  ",
    ">-\n  ",
    "? ",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "~",
    "null",
    "true",
    "0x1F",
    "1e999",
    "-1",
    "0",
    "18446744073709551616",
    "\t",
    "\u{feff}",
    "\u{0}",
    "é",
    "\u{1F600}",
    "\r\n",
    "${env.X}",
    "${env.",
    "${vars.v}",
    "${vars.",
    "${run.job}",
    "${",
    "version: 1\n",
    "name: j\n",
    "steps:\n",
    "vars:\n",
    "workspaces:\n",
    "connections:\n",
    "defaults:\n",
    "pools:\n",
    "concurrency: ",
    "depends_on: [",
    "depends_on: ",
    "type: dataset",
    "type: dataflow",
    "type: report",
    "type: webhook",
    "type: sas_flow",
    "workspace: w",
    "dataset: d",
    "dataflow: d",
    "report: r",
    "url: https://x.example/a?sig=s",
    "when: ",
    "trigger: ",
    "all_done",
    "one_failed",
    "retries: ",
    "retry_backoff: ",
    "max_backoff: ",
    "timeout: ",
    "poll_interval: ",
    "if_running: ",
    "adopt",
    "pool: ",
    "tags: [",
    "generation: 2",
    "refresh: {type: full}",
    "export: {format: PDF, path: o.pdf}",
    "wait_for: ",
    "headers: ",
    "body: ",
    "connection: ",
    "tenant_id: ",
    "client_secret: ",
    "access_token: ",
    "1h",
    "0s",
    "7d",
    "8d",
    "99999999999999999999d",
    "1ns",
    "steps.a.status == 'failed'",
    "vars.x ==",
    "a+",
    "+a",
    "tag:",
    "type:",
];

fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..rng.random_range(1..=6) {
        let len = input.len();
        let at = if len == 0 {
            0
        } else {
            rng.random_range(0..=len)
        };
        match rng.random_range(0..9) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 | 2 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                input.splice(at..at, t.bytes());
            }
            3 if len > 0 => {
                let end = (at + rng.random_range(1..=64)).min(len);
                input.drain(at.min(end)..end);
            }
            4 if len > 0 => {
                let from = rng.random_range(0..len);
                let end = (from + rng.random_range(1..=128)).min(len);
                let chunk: Vec<u8> = input[from..end].to_vec();
                let to = rng.random_range(0..=input.len());
                input.splice(to..to, chunk);
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                if !other.is_empty() {
                    let from = rng.random_range(0..other.len());
                    let end = (from + rng.random_range(1..=256)).min(other.len());
                    input.splice(at..at, other[from..end].iter().copied());
                }
            }
            6 => {
                // Deep nesting: the parser's depth budget must turn it into a diagnostic.
                let open = ["[", "{a: ", "- ", "\n "][rng.random_range(0..4)];
                let depth = rng.random_range(1..=200);
                let text = open.repeat(depth);
                input.splice(at..at, text.into_bytes());
            }
            7 => {
                let b: u8 = rng.random();
                input.insert(at, b);
            }
            _ => {
                // Swap two lines.
                let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
                if lines.len() > 2 {
                    let (i, j) = (
                        rng.random_range(0..lines.len()),
                        rng.random_range(0..lines.len()),
                    );
                    let mut v: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
                    v.swap(i, j);
                    *input = v.join(&b'\n');
                }
            }
        }
    }
    input.truncate(64 * 1024);
}

fn name_of(data: &[u8]) -> String {
    // FNV-1a: a stable file name without another dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}.yaml")
}

fn seeds(dirs: &[PathBuf]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.is_file()
                && let Ok(bytes) = std::fs::read(&p)
            {
                out.push(bytes);
            }
        }
    }
    out
}

fn save(dir: &Path, prefix: &str, data: &[u8]) {
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(format!("{prefix}{}", name_of(data))), data);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: mutate SECONDS OUT_DIR SEED_DIR...");
        std::process::exit(2);
    }
    let seconds: u64 = args[0].parse().unwrap_or(60);
    let out = PathBuf::from(&args[1]);
    let dirs: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
    let mut corpus = seeds(&dirs);
    if corpus.is_empty() {
        corpus.push(
            b"version: 1\nname: j\nsteps:\n  a: {type: webhook, url: https://x.example}\n".to_vec(),
        );
    }
    // Panics are findings, reported by this loop: keep the default hook from printing each.
    std::panic::set_hook(Box::new(|_| {}));
    let mut seen: HashSet<String> = corpus
        .iter()
        .map(|c| pbibatch_fuzz::outcome_signature(c))
        .collect();
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut execs, mut crashes, mut slow, mut valid) = (0u64, 0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        let mut input = corpus[rng.random_range(0..corpus.len())].clone();
        mutate(&mut rng, &mut input, &corpus);
        let started = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            pbibatch_fuzz::parse_and_validate(&input)
        }));
        let took = started.elapsed();
        execs += 1;
        match result {
            Err(_) => {
                crashes += 1;
                save(&out, "crash-", &input);
                eprintln!("panic: input saved as crash-{}", name_of(&input));
            }
            Ok(0) => valid += 1,
            Ok(_) => {}
        }
        if took > Duration::from_secs(2) {
            slow += 1;
            save(&out, "slow-", &input);
        }
        if result_is_new(&mut seen, &input) && corpus.len() < 5_000 {
            save(&out.join("corpus"), "", &input);
            corpus.push(input);
        }
    }
    println!(
        "fuzz.seconds={seconds} fuzz.execs={execs} fuzz.valid={valid} fuzz.corpus={} fuzz.crashes={crashes} fuzz.slow={slow}",
        corpus.len()
    );
    if crashes > 0 {
        std::process::exit(1);
    }
}

fn result_is_new(seen: &mut HashSet<String>, input: &[u8]) -> bool {
    // A second parse only for the signature: cheap next to the renderings above.
    match std::panic::catch_unwind(AssertUnwindSafe(|| pbibatch_fuzz::outcome_signature(input))) {
        Ok(sig) => seen.insert(sig),
        Err(_) => false,
    }
}
