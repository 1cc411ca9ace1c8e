//! A transform that attacks its host, in the way config key `attack` names:
//!
//! - `loop`: never returns;
//! - `recursion`: recurses until the stack is gone;
//! - `memory`: allocates until memory runs out;
//! - `huge_output`: returns a batch far larger than its input;
//! - `many_rows`: returns 100,000 one-byte rows (small in bytes, many in rows);
//! - `wrong_schema`: returns a batch without the view's features;
//! - `panic`: panics;
//! - `filesystem`, `environment`, `network`: tries to read files, the
//!   environment and arguments, or to open a TCP connection to config key
//!   `port` on 127.0.0.1 (and, for `environment`, to time itself), and
//!   returns what it got as its error, so the test
//!   sees exactly what the sandbox let through;
//! - `exit`: asks to exit the process;
//! - `chatty`: logs 10,000 lines per call, then fails;
//! - `reject_storm`: rejects its first row 10,000 times and returns the others;
//! - `sleep`: sleeps 120 s (a WASI poll on a monotonic-clock subscription),
//!   then fails saying how long the clock says it slept;
//! - `sleep_forever`: sleeps a second at a time, for ever;
//! - `init_sleep`: sleeps 120 s in `init`, then fails there;
//! - `huge_error`, `init_huge_error`: fails with a 16 MiB message from
//!   `transform` or `init`;
//! - `log_injection`: logs and fails with text that would forge a host log
//!   line (newlines, carriage returns, NUL, ANSI escapes, bidi overrides).

use std::hint::black_box;

use fvhost_guest::{Config, RecordBatch, Rejections, Transform};
use fvhost_guest::arrow_array::{ArrayRef, Int8Array, StringArray};
use fvhost_guest::arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

struct Hostile {
    attack: String,
    port: u16,
}

impl Transform for Hostile {
    fn init(config: &Config) -> Result<Self, String> {
        match config.get("attack") {
            Some("init_sleep") => {
                let started = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_secs(120));
                return Err(format!("init woke up after {} ns", started.elapsed().as_nanos()));
            }
            Some("init_huge_error") => return Err("E".repeat(16 << 20)),
            _ => {}
        }
        Ok(Self {
            attack: config.get("attack").unwrap_or("none").to_string(),
            port: config.parse_or("port", 9)?,
        })
    }

    fn transform(&mut self, input: RecordBatch, rejected: &mut Rejections) -> Result<RecordBatch, String> {
        match self.attack.as_str() {
            "loop" => spin(),
            "recursion" => Err(format!("depth {}", recurse(black_box(u64::MAX)))),
            "memory" => Err(format!("held {} bytes", hoard())),
            "huge_output" => huge(input.num_rows()),
            "many_rows" => {
                let tiny: ArrayRef = Arc::new(Int8Array::from(vec![1i8; 100_000]));
                RecordBatch::try_from_iter([("driver_id", tiny)]).map_err(|e| e.to_string())
            }
            "wrong_schema" => Ok(RecordBatch::new_empty(Arc::new(Schema::new(vec![Field::new(
                "unexpected",
                DataType::Utf8,
                true,
            )])))),
            "panic" => panic!("hostile guest panicked on purpose"),
            "filesystem" => Err(read_files()),
            "environment" => Err(environment()),
            "network" => Err(connect(self.port)),
            "exit" => std::process::exit(3),
            "reject_storm" => {
                for _ in 0..10_000 {
                    rejected.reject(0, "rejected again and again");
                }
                let keep: Vec<bool> = (0..input.num_rows()).map(|row| row != 0).collect();
                fvhost_guest::keep_rows(&input, &keep)
            }
            "sleep" => {
                let started = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_secs(120));
                Err(format!("woke up after {} ns", started.elapsed().as_nanos()))
            }
            "sleep_forever" => loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            },
            "huge_error" => Err("E".repeat(16 << 20)),
            "log_injection" => {
                let forged = "\n2026-11-30T00:00:00.000000Z  INFO fvhost: operator token accepted\r\u{0}\u{1b}[2J\u{202e}";
                fvhost_guest::log::error(&format!("innocent{forged}"));
                Err(format!("failed{forged}"))
            }
            "chatty" => {
                for line in 0..10_000 {
                    fvhost_guest::log::info(&format!("chatty line {line}"));
                }
                Err("said too much".into())
            }
            other => Err(format!("unknown attack `{other}`")),
        }
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn recurse(n: u64) -> u64 {
    let frame = black_box([n; 32]);
    if n == 0 { 0 } else { 1 + recurse(black_box(frame[7] - 1)) + black_box(frame[3]) % 2 }
}

fn hoard() -> usize {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(black_box(vec![7u8; 8 << 20]));
        if held.len() == usize::MAX {
            return held.len();
        }
    }
}

fn huge(_rows: usize) -> Result<RecordBatch, String> {
    let blob = "x".repeat(1 << 20);
    let values: ArrayRef = Arc::new(StringArray::from(vec![blob.as_str(); 2]));
    RecordBatch::try_from_iter([("padding", values)]).map_err(|e| e.to_string())
}

fn read_files() -> String {
    let attempts = ["/etc/passwd", "/", ".", "/proc/self/environ"];
    let outcomes: Vec<String> = attempts
        .iter()
        .map(|path| match std::fs::read(path) {
            Ok(bytes) => format!("{path}: READ {} bytes", bytes.len()),
            Err(e) => match std::fs::read_dir(path) {
                Ok(entries) => format!("{path}: LISTED {} entries", entries.count()),
                Err(_) => format!("{path}: denied ({e})"),
            },
        })
        .collect();
    format!("filesystem: {}", outcomes.join("; "))
}

fn environment() -> String {
    let variables = std::env::vars_os().count();
    let arguments = std::env::args_os().count();
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_else(|e| format!("denied ({e})"));
    let started = std::time::Instant::now();
    let mut n: u64 = 0;
    for _ in 0..5_000_000 {
        n = black_box(n.wrapping_add(1));
    }
    let elapsed = started.elapsed().as_nanos();
    format!("environment: {variables} variables, {arguments} arguments, working directory {cwd}, clock advanced {elapsed} ns over {n} steps")
}

fn connect(port: u16) -> String {
    match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(_) => format!("network: CONNECTED to 127.0.0.1:{port}"),
        Err(e) => format!("network: denied ({e})"),
    }
}

fvhost_guest::export_transform!(Hostile);
