//! Exec probes: a command run inside the container through its shim; exit code 0 passes.

use std::fs::File;
use std::time::Duration;

use futures::StreamExt;
use tokio::net::unix::pipe;
use tokio_util::io::ReaderStream;
use wharf_shim::{Container, ExecSpec, ShimError};

use super::{OUTPUT_LIMIT, Outcome};

pub(super) async fn check(container: &dyn Container, command: &[String], timeout: Duration) -> Outcome {
    let spec = ExecSpec { args: command.to_vec(), stdout: true, stderr: true, ..Default::default() };
    let run = async {
        let process = container.exec(spec).await?;
        let (output, code) = tokio::join!(combined_output(process.stdout, process.stderr), process.exit);
        Ok::<_, ShimError>((code, output))
    };
    // On a timeout the command is left running: the shim's exec has no way to kill it, and
    // dropping its pipes is all that can be done from here.
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Outcome::Failure(format!("command \"{}\" timed out", command.join(" "))),
        Ok(Err(ShimError::Unsupported(why))) => Outcome::Unsupported(why),
        Ok(Err(e)) => Outcome::Error(e.to_string()),
        Ok(Ok((0, _))) => Outcome::Success,
        Ok(Ok((_, Err(e)))) => Outcome::Error(format!("reading the command's output: {e}")),
        Ok(Ok((_, Ok(output)))) => Outcome::Failure(output),
    }
}

/// stdout and stderr as they arrive, the first [`OUTPUT_LIMIT`] bytes kept and the rest
/// drained so the command never blocks on a full pipe.
async fn combined_output(stdout: Option<File>, stderr: Option<File>) -> std::io::Result<String> {
    let mut streams = futures::stream::SelectAll::new();
    for file in [stdout, stderr].into_iter().flatten() {
        streams.push(ReaderStream::new(pipe::Receiver::from_file(file)?));
    }
    let mut kept = Vec::new();
    while let Some(chunk) = streams.next().await {
        let chunk = chunk?;
        let room = OUTPUT_LIMIT - kept.len();
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(String::from_utf8_lossy(&kept).into_owned())
}
