//! The supervisor's list of live children, and how their end is described.
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::Rank;

/// One forked child, as the FIFO `ps` command lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    pub pid: Pid,
    pub rank: Rank,
    pub desc: String,
}

/// The children in spawn order. Small (tens of entries), so a Vec.
#[derive(Debug, Default)]
pub struct ChildTable {
    children: Vec<ChildInfo>,
}

impl ChildTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a freshly forked child.
    pub fn insert(&mut self, info: ChildInfo) {
        self.children.push(info);
    }

    /// Forgets a reaped child; `None` if the pid is not ours.
    pub fn remove(&mut self, pid: Pid) -> Option<ChildInfo> {
        let pos = self.children.iter().position(|c| c.pid == pid)?;
        Some(self.children.remove(pos))
    }

    pub fn all(&self) -> &[ChildInfo] {
        &self.children
    }

    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// The `ps` reply body: `<idx>\t<pid>\t<desc>` lines, index 0 being the
    /// supervisor itself ("attendant").
    pub fn ps_lines(&self, main_pid: Pid) -> Vec<String> {
        std::iter::once(format!("0\t{main_pid}\tattendant"))
            .chain(
                self.children
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{}\t{}\t{}", i + 1, c.pid, c.desc)),
            )
            .collect()
    }
}

/// Says how a child ended, for the error log line.
pub fn describe_exit(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, core) => {
            format!(
                "killed by signal {} ({sig}){}",
                *sig as i32,
                if *core { ", core dumped" } else { "" }
            )
        }
        other => format!("changed state: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use nix::sys::signal::Signal;

    use super::*;

    fn child(pid: i32, desc: &str) -> ChildInfo {
        ChildInfo {
            pid: Pid::from_raw(pid),
            rank: Rank::Timer,
            desc: desc.into(),
        }
    }

    #[test]
    fn insert_remove_and_ps() {
        let mut t = ChildTable::new();
        t.insert(child(10, "timer"));
        t.insert(child(11, "fifo server"));
        assert_eq!(
            t.ps_lines(Pid::from_raw(9)),
            vec!["0\t9\tattendant", "1\t10\ttimer", "2\t11\tfifo server"]
        );
        assert_eq!(
            t.remove(Pid::from_raw(10)).map(|c| c.desc),
            Some("timer".to_string())
        );
        assert_eq!(t.remove(Pid::from_raw(10)), None);
        assert_eq!(t.all().len(), 1);
        assert!(t.remove(Pid::from_raw(11)).is_some());
        assert!(t.is_empty());
    }

    #[test]
    fn exit_descriptions() {
        let p = Pid::from_raw(5);
        assert_eq!(
            describe_exit(&WaitStatus::Exited(p, 3)),
            "exited with status 3"
        );
        assert_eq!(
            describe_exit(&WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            "killed by signal 9 (SIGKILL)"
        );
        assert!(
            describe_exit(&WaitStatus::Signaled(p, Signal::SIGSEGV, true)).ends_with("core dumped")
        );
    }
}
