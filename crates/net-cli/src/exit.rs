//! Errors that carry the process exit code, and the one place that prints them.

use std::process::ExitCode;

/// A failure of a subcommand: the error to print and the exit code to leave with.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

/// Exit code for failures that no subcommand gave a more specific code.
pub const GENERIC: u8 = 1;
/// Exit code for bad input: a bad address, argument or file named on the command line.
pub const USAGE: u8 = 2;

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure {
            code: GENERIC,
            error: error.into(),
        }
    }
}

/// Attaches an exit code to an error, e.g. `parse(x).code(2)?`.
pub trait WithCode<T> {
    fn code(self, code: u8) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> WithCode<T> for Result<T, E> {
    fn code(self, code: u8) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            code,
            error: e.into(),
        })
    }
}

/// The result of every subcommand.
pub type Outcome = Result<ExitCode, Failure>;

/// Prints a failure as one line on stderr and turns the outcome into the process exit code.
pub fn report(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            if is_broken_pipe(&failure.error) {
                // `netkit ... | head` closing early is not an error (as ripgrep does).
                return ExitCode::SUCCESS;
            }
            eprintln!("netkit: error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
