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

/// The children in spawn order (a respawned child takes its
/// predecessor's place). Small (tens of entries), so a Vec.
#[derive(Debug, Default)]
pub struct ChildTable {
    children: Vec<ChildInfo>,
    /// Beside each child, the order key it was inserted with.
    keys: Vec<usize>,
}

impl ChildTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a freshly forked child after every other.
    pub fn insert(&mut self, info: ChildInfo) {
        let key = self.keys.last().map_or(0, |k| k + 1);
        self.insert_keyed(key, info);
    }

    /// Records a child at the place `key` orders it to (the supervisor's
    /// member number, so that a successor is listed where its predecessor
    /// was).
    pub fn insert_keyed(&mut self, key: usize, info: ChildInfo) {
        let pos = self.keys.partition_point(|k| *k <= key);
        self.keys.insert(pos, key);
        self.children.insert(pos, info);
    }

    /// Forgets a reaped child; `None` if the pid is not ours.
    pub fn remove(&mut self, pid: Pid) -> Option<ChildInfo> {
        let pos = self.children.iter().position(|c| c.pid == pid)?;
        self.keys.remove(pos);
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
    fn a_successor_takes_its_predecessors_place() {
        let mut t = ChildTable::new();
        t.insert_keyed(0, child(10, "timer"));
        t.insert_keyed(1, child(11, "fifo server"));
        t.insert_keyed(2, child(12, "tcp main process"));
        t.remove(Pid::from_raw(11));
        t.insert_keyed(1, child(21, "fifo server"));
        let pids: Vec<i32> = t.all().iter().map(|c| c.pid.as_raw()).collect();
        assert_eq!(pids, vec![10, 21, 12]);
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
