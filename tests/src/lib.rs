//! Helpers for framewire's integration tests: finding the Python venv with the
//! original implementations, running a Python peer with a deadline, and
//! running a test body with a deadline so a hang fails the test instead of CI.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The Python interpreter of the venv that holds the originals.
///
/// `FRAMEWIRE_PYTHON` wins; otherwise `<repo>/.venv/bin/python`, which
/// `scripts/setup.sh` creates. Panics with instructions if neither exists: the
/// interop tests are part of the suite and never skip silently.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("FRAMEWIRE_PYTHON") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "no Python venv with the originals at {}: run scripts/setup.sh (or set FRAMEWIRE_PYTHON)",
        p.display()
    );
    p
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A path under `tests/python/`.
pub fn python_script(name: &str) -> PathBuf {
    repo_root().join("tests/python").join(name)
}

/// A running Python peer. Killed when dropped.
pub struct PythonPeer {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    /// The port it printed as `PORT <n>`, for servers.
    pub port: Option<u16>,
}

impl PythonPeer {
    /// Starts `python tests/python/<script> args...`. If `expect_port`, waits
    /// for its `PORT <n>` line.
    pub fn start(script: &str, args: &[&str], expect_port: bool) -> PythonPeer {
        let mut child = Command::new(python())
            .arg(python_script(script))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
        let stdout = Some(BufReader::new(child.stdout.take().expect("piped stdout")));
        let mut peer = PythonPeer {
            child,
            stdout,
            port: None,
        };
        if expect_port {
            let line = peer.read_line_where(|l| l.starts_with("PORT "));
            peer.port = Some(line[5..].trim().parse().expect("PORT <n>"));
        }
        peer
    }

    /// Reads stdout lines until one satisfies `pred` (other lines are echoed to
    /// stderr, e.g. cs.progress status output).
    pub fn read_line_where(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let stdout = self
            .stdout
            .as_mut()
            .expect("stdout not yet taken by finish");
        loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).expect("read peer stdout");
            assert!(n > 0, "python peer exited without the expected output");
            if pred(&line) {
                return line;
            }
            eprint!("[peer] {line}");
        }
    }

    /// Waits for the last JSON line on stdout and the exit status.
    pub fn finish(mut self, deadline: Duration) -> (serde_json::Value, bool) {
        let mut rest = String::new();
        let mut stdout = self.stdout.take().expect("finish is called once");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = stdout.read_to_string(&mut rest);
            let _ = tx.send(rest);
        });
        let Ok(rest) = rx.recv_timeout(deadline) else {
            let _ = self.child.kill();
            panic!("python peer did not finish within {deadline:?}");
        };
        let status = self.child.wait().expect("wait for peer");
        let last = rest
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON summary from peer; output: {rest}"));
        (
            serde_json::from_str(last).expect("peer summary is JSON"),
            status.success(),
        )
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `body` on a thread and fails the test if it takes longer than `limit`.
pub fn with_deadline<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            handle.join().expect("test body thread");
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: re-raise its panic.
            match handle.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => unreachable!("sender dropped without a value or a panic"),
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test did not finish within {limit:?} (hang)")
        }
    }
}
