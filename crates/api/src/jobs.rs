//! Long admin work run as background jobs: retraining and recomputing segments.
//!
//! The server does not link the trainer, Polars or linfa: a job runs the project's own
//! command-line tools (`train`, `segments`) as child processes found in the tools folder
//! (by default the folder of the `serve` binary, where cargo puts every binary of the
//! workspace), with the server's `DATABASE_URL`. A job's progress is the last line its tool
//! printed; its log keeps the last [`LOG_LINES`] lines. One job of each kind runs at a time.

use serde::Serialize;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Lines of a job's output kept for its status.
pub const LOG_LINES: usize = 40;
/// Finished jobs remembered (the oldest are forgotten first).
const KEEP_FINISHED: usize = 50;

/// Where the tools are and what they read.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The folder holding the `train` and `segments` binaries.
    pub dir: PathBuf,
    /// Passed to every tool as `DATABASE_URL`.
    pub database_url: String,
}

impl Tools {
    /// The tools beside the running binary.
    pub fn beside_current_exe(database_url: &str) -> Self {
        let dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        Self {
            dir,
            database_url: database_url.to_owned(),
        }
    }

    /// The path of tool `name`, or an error naming where it was looked for and how to build it.
    pub fn find(&self, name: &str) -> Result<PathBuf, String> {
        let path = self
            .dir
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "the `{name}` tool is not in {} (build it with `cargo build --release --bin {name}`, \
                 or point serve's --tools-dir at the folder that has it)",
                self.dir.display()
            ))
        }
    }

    /// Runs tool `name` to completion (for short work such as an export); returns its
    /// standard output, or its last lines of standard error when it fails.
    pub fn run(&self, name: &str, args: &[String]) -> Result<String, String> {
        let path = self.find(name)?;
        let out = Command::new(&path)
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            Err(tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// A job as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: u64,
    pub kind: String,
    pub state: JobState,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The last line the tool printed.
    pub progress: String,
    /// What the job produced or why it failed (set when it ends).
    pub result: Option<String>,
    /// The last lines of the tool's output.
    pub log: VecDeque<String>,
}

/// The jobs of one server.
#[derive(Debug, Default)]
pub struct Jobs {
    jobs: Mutex<Vec<Job>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// What runs after the tool exits successfully, on the job's thread: turns the tool's output
/// into the job's result, or fails the job.
pub type Finish = Box<dyn FnOnce(&str) -> Result<String, String> + Send>;

impl Jobs {
    /// All jobs, newest first.
    pub fn list(&self) -> Vec<Job> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.iter().rev().cloned().collect()
    }

    /// One job.
    pub fn get(&self, id: u64) -> Option<Job> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.iter().find(|j| j.id == id).cloned()
    }

    /// Starts `tool args` as a job of `kind` unless one of that kind is running (then the
    /// running job is returned as the error). `finish` runs when the tool succeeds.
    pub fn start(
        self: &Arc<Self>,
        kind: &str,
        tools: &Tools,
        tool: &str,
        args: Vec<String>,
        finish: Finish,
    ) -> Result<Job, StartError> {
        let path = tools.find(tool).map_err(StartError::Missing)?;
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = jobs
            .iter()
            .find(|j| j.kind == kind && j.state == JobState::Running)
        {
            return Err(StartError::Busy(Box::new(running.clone())));
        }
        let mut child = Command::new(&path)
            .args(&args)
            .env("DATABASE_URL", &tools.database_url)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| StartError::Missing(format!("cannot start {}: {e}", path.display())))?;
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let job = Job {
            id,
            kind: kind.to_owned(),
            state: JobState::Running,
            started_at: chrono::Utc::now(),
            finished_at: None,
            progress: format!("started {tool} {}", args.join(" ")),
            result: None,
            log: VecDeque::new(),
        };
        jobs.push(job.clone());
        let finished = jobs.iter().filter(|j| j.state != JobState::Running).count();
        if finished > KEEP_FINISHED
            && let Some(oldest) = jobs.iter().position(|j| j.state != JobState::Running)
        {
            jobs.remove(oldest);
        }
        drop(jobs);
        tracing::info!(job = id, kind, tool, "job started");

        let this = Arc::clone(self);
        let stderr = child.stderr.take();
        let stdout = child.stdout.take();
        let output = Arc::new(Mutex::new(String::new()));
        std::thread::spawn(move || {
            // Standard error on its own thread, so that neither pipe fills up and blocks.
            let err_thread = stderr.map(|s| {
                let this = Arc::clone(&this);
                std::thread::spawn(move || {
                    for line in BufReader::new(s).lines().map_while(Result::ok) {
                        this.note(id, &line);
                    }
                })
            });
            if let Some(s) = stdout {
                for line in BufReader::new(s).lines().map_while(Result::ok) {
                    this.note(id, &line);
                    let mut out = output.lock().unwrap_or_else(|e| e.into_inner());
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            if let Some(t) = err_thread {
                let _ = t.join();
            }
            let outcome = match child.wait() {
                Ok(status) if status.success() => {
                    let out = output.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    finish(&out)
                }
                Ok(status) => Err(format!("the tool exited with {status}")),
                Err(e) => Err(format!("waiting for the tool failed: {e}")),
            };
            this.end(id, outcome);
        });
        Ok(job)
    }

    fn note(&self, id: u64, line: &str) {
        let line = line.trim_end();
        if line.is_empty() {
            return;
        }
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = jobs.iter_mut().find(|j| j.id == id) {
            j.progress = line.to_owned();
            j.log.push_back(line.to_owned());
            if j.log.len() > LOG_LINES {
                j.log.pop_front();
            }
        }
    }

    fn end(&self, id: u64, outcome: Result<String, String>) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = jobs.iter_mut().find(|j| j.id == id) {
            j.finished_at = Some(chrono::Utc::now());
            match outcome {
                Ok(r) => {
                    tracing::info!(job = id, kind = %j.kind, result = %r, "job succeeded");
                    j.state = JobState::Succeeded;
                    j.result = Some(r);
                }
                Err(e) => {
                    tracing::warn!(job = id, kind = %j.kind, error = %e, "job failed");
                    j.state = JobState::Failed;
                    j.result = Some(e);
                }
            }
        }
    }
}

/// Why a job did not start.
#[derive(Debug)]
pub enum StartError {
    /// The tool is missing or cannot be started.
    Missing(String),
    /// A job of that kind is running.
    Busy(Box<Job>),
}
