//! A LAVA `qemu` device for the suite's guests: the variables of LAVA's `qemu.jinja2` device
//! type that make its QEMU boot like `bench --kernel`'s guests (the same CPU flags, the exact
//! icount clock under TCG, one vCPU, no reboot on panic), written as a job `context` (a server
//! renders the device with it) and as a device dictionary (a server registers it; `lava-run`,
//! which has no server, needs it rendered).
//!
//! Rendering is LAVA's own: Jinja2 over the device-type templates that ship in Debian's
//! `lava-server` package, run by the Python that runs `lava-run` (its package depends on
//! Jinja2). `tools/provision-lava.sh` unpacks the templates when the server is not installed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use contract::{Accel, Arch, Clock};
use yaml_serde::{Mapping, Value};

use super::job::{lava_arch, s};

/// Where Debian's lava-server installs the device-type templates.
pub const SERVER_TEMPLATES: &str = "/usr/share/lava-server/device-types";

/// The device dictionary of a server's `qemu` device for these jobs: nothing set, so the job's
/// `context` ([`QemuDevice::variables`]) decides (a dictionary's `{% set %}` would win over it).
pub const SERVER_DICTIONARY: &str = "{# forkbench: a qemu device whose jobs set QEMU's options in their context #}\n\
                                     {% extends 'qemu.jinja2' %}\n";

/// A QEMU device of a LAVA lab as forkbench boots its guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuDevice {
    pub arch: Arch,
    /// Guest RAM, MiB.
    pub mem_mib: u64,
    pub accel: Accel,
}

impl QemuDevice {
    /// The guest clock: icount under TCG (exact instruction counts, immune to the worker's
    /// load), wall under KVM.
    pub fn clock(&self) -> Clock {
        match self.accel {
            Accel::Kvm => Clock::Wall,
            _ => Clock::Icount,
        }
    }

    /// The `qemu.jinja2` variables, in order. The machine and CPU come from
    /// [`guest::qemu::machine_cpu_args`], the clock from [`guest::qemu::ICOUNT_ARGS`]: one
    /// definition for local guests and lab devices.
    pub fn variables(&self) -> Mapping {
        let mut vars = Mapping::new();
        vars.insert(s("arch"), s(lava_arch(self.arch)));
        let kvm = self.accel == Accel::Kvm;
        // The template adds `-cpu host -enable-kvm` unless told there is no KVM.
        vars.insert(s("no_kvm"), Value::Bool(!kvm));
        vars.insert(s("memory"), Value::Number(self.mem_mib.into()));
        vars.insert(s("netdevice"), s("user"));
        let mut extra: Vec<String> = Vec::new();
        if !kvm {
            extra.push("-accel tcg".into());
            // x86_64: the template sets no CPU without KVM. arm64: it always sets `-cpu` and
            // `-machine` from these two variables.
            let args = guest::qemu::machine_cpu_args(self.arch, Accel::Tcg);
            for pair in args.chunks(2) {
                match (self.arch, pair) {
                    (Arch::Arm64, ["-cpu", v]) => {
                        vars.insert(s("cpu"), s(*v));
                    }
                    (Arch::Arm64, ["-M" | "-machine", v]) => {
                        vars.insert(s("machine"), s(*v));
                    }
                    (_, [flag, v]) => extra.push(format!("{flag} {v}")),
                    (_, other) => extra.push(other.join(" ")),
                }
            }
            extra.push(guest::qemu::ICOUNT_ARGS.join(" "));
            extra.push("-smp 1".into());
        } else {
            extra.push("-smp 2".into());
        }
        // A guest that panics (panic=-1) ends QEMU, and the job, at once.
        extra.push("-no-reboot".into());
        vars.insert(
            s("extra_options"),
            Value::Sequence(extra.into_iter().map(s).collect()),
        );
        vars
    }

    /// The device dictionary: `qemu.jinja2` with [`Self::variables`] set.
    pub fn dictionary(&self) -> String {
        let mut d = String::from(
            "{# forkbench: a qemu device as `cargo xtask lava device` writes it #}\n\
             {% extends 'qemu.jinja2' %}\n",
        );
        for (k, v) in &self.variables() {
            let k = k.as_str().unwrap_or_default();
            d.push_str(&format!("{{% set {k} = {} %}}\n", jinja_literal(v)));
        }
        d
    }
}

/// A YAML value as a Jinja2 literal.
fn jinja_literal(v: &Value) -> String {
    match v {
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(t) => format!("'{}'", t.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(jinja_literal).collect();
            format!("[{}]", items.join(", "))
        }
        _ => "None".into(),
    }
}

/// The device-type templates: `explicit`, else `$FORKBENCH_LAVA_TEMPLATES`, else the
/// installed server's, else those `tools/provision-lava.sh` unpacked into the cache.
pub fn templates_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => std::env::var_os("FORKBENCH_LAVA_TEMPLATES")
            .map(PathBuf::from)
            .into_iter()
            .chain([PathBuf::from(SERVER_TEMPLATES), cache_templates()])
            .collect(),
    };
    for c in &candidates {
        if c.join("qemu.jinja2").is_file() {
            return Ok(c.clone());
        }
    }
    bail!(
        "no LAVA device-type templates (qemu.jinja2) in {}: run tools/provision-lava.sh or pass \
         --templates DIR",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Where `tools/provision-lava.sh` unpacks the templates: `lava/device-types` beside the kernel
/// cache.
pub fn cache_templates() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("forkbench/lava/device-types")
}

/// Render a device dictionary with LAVA's templates (Jinja2, as the server renders devices).
pub fn render(dictionary: &str, templates: &Path) -> anyhow::Result<String> {
    let python = lava_python();
    let script = "import sys, jinja2\n\
                  env = jinja2.Environment(loader=jinja2.FileSystemLoader([sys.argv[1]]), \
                  trim_blocks=True, autoescape=False)\n\
                  sys.stdout.write(env.from_string(sys.stdin.read()).render())\n";
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(templates)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {} to render the device", python.display()))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(dictionary.as_bytes())
        .context("writing the device dictionary to Jinja2")?;
    let out = child.wait_with_output().context("rendering the device")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!(
            "rendering the device dictionary with {} failed ({}): {last}",
            python.display(),
            out.status
        );
    }
    String::from_utf8(out.stdout).context("the rendered device is not UTF-8")
}

/// The Python that runs `lava-run` (its shebang), which has Jinja2; else `python3`.
fn lava_python() -> PathBuf {
    guest::fetch::which_in_path("lava-run")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| {
            let first = t.lines().next()?.strip_prefix("#!")?.trim().to_string();
            let interp = first.split_whitespace().next()?.to_string();
            Path::new(&interp).is_file().then(|| PathBuf::from(interp))
        })
        .unwrap_or_else(|| PathBuf::from("python3"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_x86_tcg_device_boots_like_a_local_guest() {
        let d = QemuDevice {
            arch: Arch::X86_64,
            mem_mib: 1024,
            accel: Accel::Tcg,
        };
        assert_eq!(d.clock(), Clock::Icount);
        let dict = d.dictionary();
        assert!(dict.contains("{% extends 'qemu.jinja2' %}"), "{dict}");
        assert!(dict.contains("{% set no_kvm = True %}"), "{dict}");
        assert!(dict.contains("{% set memory = 1024 %}"), "{dict}");
        let cpu = guest::qemu::machine_cpu_args(Arch::X86_64, Accel::Tcg).join(" ");
        assert!(dict.contains(&format!("'{cpu}'")), "{dict}");
        assert!(
            dict.contains("'-icount shift=0,sleep=off', '-smp 1'"),
            "{dict}"
        );
    }

    #[test]
    fn arm64_sets_the_templates_cpu_and_machine() {
        let v = QemuDevice {
            arch: Arch::Arm64,
            mem_mib: 2048,
            accel: Accel::Tcg,
        }
        .variables();
        assert_eq!(v.get("arch"), Some(&s("arm64")));
        assert_eq!(v.get("cpu"), Some(&s("max,pauth-impdef=on")));
        assert_eq!(v.get("machine"), Some(&s("virt")));
        let extra = v.get("extra_options").unwrap().as_sequence().unwrap();
        assert!(!extra.iter().any(|e| e.as_str().unwrap().contains("-cpu")));
    }

    #[test]
    fn kvm_devices_keep_the_wall_clock() {
        let d = QemuDevice {
            arch: Arch::X86_64,
            mem_mib: 1024,
            accel: Accel::Kvm,
        };
        assert_eq!(d.clock(), Clock::Wall);
        assert!(d.dictionary().contains("{% set no_kvm = False %}"));
        assert!(!d.dictionary().contains("icount"));
    }

    #[test]
    fn jinja_literals_escape_quotes() {
        assert_eq!(jinja_literal(&s("it's")), r"'it\'s'");
        assert_eq!(
            jinja_literal(&Value::Sequence(vec![s("a"), Value::Bool(true)])),
            "['a', True]"
        );
    }
}
