//! How the end of a container's main process becomes an `Exit`.

use wharf_shim::Exit;

/// Exit code reported for a container that ended while no agent watched it.
pub(crate) const UNKNOWN_EXIT_CODE: i32 = 137;

/// How a process ended, as far as the shim could see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Exited(i32),
    Signaled(i32),
    /// Not our child (adopted), or its status was lost.
    Unknown,
}

/// `stopped_with`: the last signal `stop` sent, if it was asked to stop the container.
pub(crate) fn classify(ended: Ended, oom_kills: u64, stopped_with: Option<i32>) -> Exit {
    let oom = oom_kills > 0 && stopped_with.is_none();
    match ended {
        Ended::Exited(0) => Exit::Code(0),
        Ended::Exited(_) | Ended::Signaled(libc::SIGKILL) if oom => Exit::OutOfMemory,
        Ended::Exited(code) => Exit::Code(code),
        Ended::Signaled(signal) if stopped_with.is_some() => Exit::Killed { signal },
        Ended::Signaled(signal) => Exit::Code(128 + signal),
        Ended::Unknown if oom => Exit::OutOfMemory,
        Ended::Unknown => match stopped_with {
            Some(signal) => Exit::Killed { signal },
            None => Exit::Failed {
                code: UNKNOWN_EXIT_CODE,
                message: "the container ended while a previous agent ran it, so its exit code is unknown".into(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits() {
        assert_eq!(classify(Ended::Exited(0), 0, None), Exit::Code(0));
        assert_eq!(classify(Ended::Exited(3), 0, None), Exit::Code(3));
        assert_eq!(classify(Ended::Exited(3), 0, Some(15)), Exit::Code(3));
        // Killed by a signal nobody on our side sent: the shell's convention.
        assert_eq!(classify(Ended::Signaled(11), 0, None), Exit::Code(139));
        assert_eq!(classify(Ended::Signaled(9), 0, Some(9)), Exit::Killed { signal: 9 });
        assert_eq!(classify(Ended::Signaled(15), 0, Some(15)), Exit::Killed { signal: 15 });
    }

    #[test]
    fn out_of_memory() {
        assert_eq!(classify(Ended::Signaled(9), 1, None), Exit::OutOfMemory);
        // A shell whose child the OOM killer ended.
        assert_eq!(classify(Ended::Exited(137), 1, None), Exit::OutOfMemory);
        assert_eq!(classify(Ended::Exited(0), 1, None), Exit::Code(0));
        // Stopped on purpose after an earlier OOM kill of some child.
        assert_eq!(classify(Ended::Signaled(9), 1, Some(9)), Exit::Killed { signal: 9 });
        assert_eq!(classify(Ended::Unknown, 2, None), Exit::OutOfMemory);
    }

    #[test]
    fn adopted() {
        let Exit::Failed { code, message } = classify(Ended::Unknown, 0, None) else { panic!() };
        assert_eq!(code, 137);
        assert!(message.contains("previous agent"), "{message}");
        assert_eq!(classify(Ended::Unknown, 0, Some(9)), Exit::Killed { signal: 9 });
    }
}
