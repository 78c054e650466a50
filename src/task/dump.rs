//! One actor's task tree with those of its descendants: what a `kill
//! -USR1` gathers through the tree, as text and as JSON.

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use super::TaskTree;
use crate::msg::ActorUid;

/// One actor's task tree, with those of its descendants.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ActorDump {
    /// Who.
    pub actor: ActorUid,
    /// Its process id.
    pub pid: u32,
    /// Its tasks; `None` when it did not answer.
    pub tasks: Option<TaskTree>,
    /// Why its tasks are missing.
    pub missing: Option<String>,
    /// Its children's dumps, in spawn order.
    pub children: Vec<ActorDump>,
}

impl ActorDump {
    /// Every actor in the dump, this one first, depth first.
    pub fn actors(&self) -> Vec<&ActorDump> {
        let mut out = vec![self];
        for child in &self.children {
            out.extend(child.actors());
        }
        out
    }

    /// The dump as JSON (`serde_json` of its `Serialize`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a dump is strings and numbers")
    }

    /// Each actor's header, its tree written straight into the buffer
    /// at its depth: through `core::fmt` line by line, the gathered text
    /// of a 10k-task actor took twice as long as its own dump.
    fn write_text(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        let _ = write!(out, "{pad}actor {} pid {}", self.actor, self.pid);
        match (&self.tasks, &self.missing) {
            (Some(tasks), _) => {
                let _ = writeln!(out, ": {} tasks", tasks.len());
                tasks.write_text(out, depth + 1);
            }
            (None, why) => {
                let why = why.as_deref().unwrap_or("?");
                let _ = writeln!(out, ": MISSING ({why})");
            }
        }
        for child in &self.children {
            child.write_text(out, depth + 1);
        }
    }
}

impl fmt::Display for ActorDump {
    /// Each actor's header, its tasks indented under it, its children
    /// indented under those.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_text(&mut out, 0);
        f.write_str(&out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::task::TaskEntry;

    pub(crate) fn tree(n: u64) -> TaskTree {
        let task = |id| TaskEntry {
            id,
            name: "worker".into(),
            parent: None,
            depth: 0,
            file: "src/app.rs".into(),
            line: 1,
            polling: false,
            for_us: 1,
            polls: 1,
            busy_us: 0,
            long_idle: false,
            spans: 0..0,
        };
        TaskTree {
            tasks: (0..n).map(task).collect(),
            spans: Vec::new(),
        }
    }

    pub(crate) fn actor(name: &str, pid: u32, tasks: u64, children: Vec<ActorDump>) -> ActorDump {
        ActorDump {
            actor: ActorUid::new(name, "u"),
            pid,
            tasks: Some(tree(tasks)),
            missing: None,
            children,
        }
    }

    #[test]
    fn a_dump_reads_back_from_its_json_and_its_text_nests_each_tree() {
        let mut quiet = actor("quiet \"one\"", 4, 0, vec![]);
        quiet.tasks = None;
        quiet.missing = Some("no reply within 1.5s".into());
        let dump = actor("root", 1, 3, vec![actor("child", 2, 2, vec![quiet])]);
        let back: ActorDump = serde_json::from_str(&dump.to_json()).unwrap();
        assert_eq!(back, dump);
        let text = dump.to_string();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("actor ('root', 'u') pid 1: 3 tasks"));
        let first_task = tree(3).to_text().lines().next().unwrap().to_owned();
        assert_eq!(lines.next(), Some(format!("  {first_task}").as_str()));
        assert!(
            text.contains("\n  actor ('child', 'u') pid 2: 2 tasks\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "    actor ('quiet \"one\"', 'u') pid 4: MISSING (no reply within 1.5s)\n"
            ),
            "{text}"
        );
    }
}
