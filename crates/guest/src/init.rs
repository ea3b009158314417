//! The guest side: forkbench as PID 1 of a kernel under test.
//!
//! [`run_as_init`] mounts proc, sysfs, devtmpfs, and tmpfs on /run and /tmp (already mounted
//! is fine), makes sure fds 0/1/2 are the console, puts the console in raw no-echo mode, sends
//! a Hello frame, reads the plan from [`PLAN_PATH`] and runs it: Real steps in-process through
//! `realfork::run_each` (a header, the context and each run as `contract::RunnerLine` JSON in
//! Line frames, exactly the lines `forkbench real --json` prints), Exec steps as child
//! processes whose merged stdout and stderr stream back in Output frames until they exit or
//! their timeout kills them. Each step ends with a StepDone frame. Then sync and power off.
//! Nothing escapes: an error or a panic becomes an Error frame, then the guest powers off.
//!
//! PID 1 inherits every orphan: they are reaped between steps (not during a Real step, whose
//! own `waitpid`s must get their children).

use std::fs;
use std::io::{self, BufRead, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use contract::{Header, RunnerLine};

use crate::frame::{FrameKind, encode};
use crate::plan::{GuestHello, GuestPlan, GuestStep, HostCommand, PLAN_PATH, StepDone};

/// Sends one message to the host.
pub type Emit<'a> = dyn FnMut(FrameKind, &[u8]) -> io::Result<()> + 'a;

/// Output read from an Exec step at a time (one Output frame, a few console lines).
const OUTPUT_READ: usize = 4096;

/// The console writer and the next seq, shared with the panic hook.
static CONSOLE: Mutex<Option<ConsoleFrames>> = Mutex::new(None);

struct ConsoleFrames {
    seq: u64,
}

impl ConsoleFrames {
    fn send(&mut self, kind: FrameKind, payload: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let text = encode(kind, self.seq, payload);
        self.seq += 1;
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

fn send(kind: FrameKind, payload: &[u8]) -> io::Result<()> {
    let mut guard = CONSOLE.lock().unwrap_or_else(|p| p.into_inner());
    guard
        .get_or_insert(ConsoleFrames { seq: 0 })
        .send(kind, payload)
}

/// Run as the guest's init: never returns; the guest powers off at the end.
pub fn run_as_init() -> ! {
    // Before realfork's hooks (hostenv chains the hook it finds): a panic anywhere is reported.
    std::panic::set_hook(Box::new(|info| {
        let text = format!("guest init panicked: {info}");
        let text = text.replace('\n', " ");
        match CONSOLE.try_lock() {
            Ok(mut g) => {
                let _ = g
                    .get_or_insert(ConsoleFrames { seq: 0 })
                    .send(FrameKind::Error, text.as_bytes());
            }
            // The panic came from inside a send: say it as plain console text.
            Err(_) => eprintln!("\n{text}"),
        }
    }));
    let outcome = std::panic::catch_unwind(|| guest_main(&mut send));
    let reason = match outcome {
        Ok(Ok(())) => "plan done".to_string(),
        Ok(Err(e)) => {
            let _ = send(FrameKind::Error, e.as_bytes());
            format!("error: {e}")
        }
        Err(_) => "panic".to_string(),
    };
    power_off(&reason)
}

fn guest_main(emit: &mut Emit<'_>) -> Result<(), String> {
    let mut notes = mount_filesystems();
    notes.extend(console_fds());
    notes.extend(console_raw());
    let hello = collect_hello(Path::new("/sys"), Path::new("/proc"), notes);
    let hello_json = serde_json::to_vec(&hello).map_err(|e| e.to_string())?;
    emit(FrameKind::Hello, &hello_json).map_err(|e| format!("writing to the console: {e}"))?;
    let text = fs::read_to_string(PLAN_PATH).map_err(|e| format!("reading {PLAN_PATH}: {e}"))?;
    let plan = GuestPlan::from_json(&text).map_err(|e| format!("{PLAN_PATH}: {e}"))?;
    serve(&plan, &mut io::stdin().lock(), emit)
}

/// Runs a non-interactive plan in this process's own userspace, not as init: a lab board that
/// boots its own kernel and rootfs runs the plan from a LAVA test shell. The same Hello, Line,
/// StepDone and Bye frames as a guest's init go to stdout (the board's console), so the job log
/// decodes the same way; nothing is mounted and nothing powers off.
pub fn run_plan_here(plan: &GuestPlan) -> Result<(), String> {
    if plan.interactive {
        return Err(
            "the plan is interactive (it waits for `go <step>` from a host): a plan run \
                    from a shell must be non-interactive"
                .into(),
        );
    }
    let console = |e: io::Error| format!("writing to stdout: {e}");
    let hello = collect_hello(Path::new("/sys"), Path::new("/proc"), Vec::new());
    let hello_json = serde_json::to_vec(&hello).map_err(|e| e.to_string())?;
    send(FrameKind::Hello, &hello_json).map_err(console)?;
    let result = serve(plan, &mut io::empty(), &mut send);
    let reason = match &result {
        Ok(()) => "plan done".to_string(),
        Err(e) => {
            let _ = send(FrameKind::Error, e.as_bytes());
            format!("error: {e}")
        }
    };
    send(FrameKind::Bye, reason.as_bytes()).map_err(console)?;
    result
}

/// Runs `plan`: every step in order, or (interactive) the steps the host's `go <i>` lines ask
/// for until `poweroff` or the end of `commands`.
pub fn serve(
    plan: &GuestPlan,
    commands: &mut dyn BufRead,
    emit: &mut Emit<'_>,
) -> Result<(), String> {
    let console = |e: io::Error| format!("writing to the console: {e}");
    if !plan.interactive {
        for i in 0..plan.steps.len() {
            run_step(plan, i, emit).map_err(console)?;
        }
        return Ok(());
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = read_command_line(commands, &mut line)
            .map_err(|e| format!("reading the console: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        match HostCommand::parse(&text) {
            Some(HostCommand::Poweroff) => return Ok(()),
            Some(HostCommand::Go(i)) => {
                run_step(plan, i, emit).map_err(console)?;
            }
            None => {
                let msg = format!(
                    "unknown command {:?} (expected go <step> or poweroff)",
                    text.trim()
                );
                emit(FrameKind::Error, msg.as_bytes()).map_err(console)?;
            }
        }
    }
}

/// One command line: raw mode passes `\r` through, so either ends a line.
fn read_command_line(r: &mut dyn BufRead, line: &mut Vec<u8>) -> io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(total);
        }
        let end = buf.iter().position(|&b| b == b'\n' || b == b'\r');
        let take = end.map_or(buf.len(), |i| i + 1);
        line.extend_from_slice(&buf[..end.unwrap_or(take)]);
        r.consume(take);
        total += take;
        if end.is_some() {
            return Ok(total);
        }
    }
}

/// Runs step `i` and sends its StepDone (a step that does not exist is a failed StepDone).
pub fn run_step(plan: &GuestPlan, i: usize, emit: &mut Emit<'_>) -> io::Result<StepDone> {
    let done = match plan.steps.get(i) {
        None => StepDone {
            step: i,
            ok: false,
            exit_code: None,
            error: Some(format!("no step {i}: the plan has {}", plan.steps.len())),
            unsupported: false,
        },
        Some(GuestStep::Real(opts)) => {
            let mut opts = opts.clone();
            if plan.pin_last_cpu {
                opts.cpu = last_online_cpu();
            }
            if fs::read_to_string("/proc/cmdline").is_ok_and(|c| crate::plan::exact_mode(&c)) {
                crate::plan::make_exact(&mut opts);
                run_real_per_process(i, &opts, emit)?
            } else {
                run_real(i, &opts, emit)?
            }
        }
        Some(GuestStep::Exec {
            path,
            args,
            timeout_secs,
        }) => run_exec(i, path, args, Duration::from_secs(*timeout_secs), emit)?,
    };
    reap_orphans();
    let json = serde_json::to_vec(&done).expect("StepDone serialises");
    emit(FrameKind::StepDone, &json)?;
    Ok(done)
}

/// The highest CPU this process may run on (`None` when the mask cannot be read: then the
/// step runs unpinned and its context says so).
fn last_online_cpu() -> Option<usize> {
    hostenv::cpu::allowed_cpus().ok()?.ids().max()
}

fn run_real(step: usize, opts: &contract::RealOpts, emit: &mut Emit<'_>) -> io::Result<StepDone> {
    // Both callbacks send through the one `emit`; the first console error is kept.
    let state = std::cell::RefCell::new((emit, None::<io::Error>));
    let send_line = |line: RunnerLine| {
        let mut s = state.borrow_mut();
        let (emit, error) = &mut *s;
        if error.is_none()
            && let Err(e) = emit(FrameKind::Line, line.to_json().as_bytes())
        {
            *error = Some(e);
        }
    };
    send_line(RunnerLine::Header(Header::current()));
    let result = realfork::run_each(
        opts,
        &mut |ctx| send_line(RunnerLine::Context(Box::new(ctx.clone()))),
        &mut |rec| send_line(RunnerLine::Run(Box::new(rec.clone()))),
    );
    if let (_, Some(e)) = state.into_inner() {
        return Err(e);
    }
    Ok(match result {
        Ok(()) => StepDone {
            step,
            ok: true,
            exit_code: Some(0),
            error: None,
            unsupported: false,
        },
        Err(e) => StepDone {
            step,
            ok: false,
            exit_code: Some(i32::from(e.exit_code())),
            error: Some(e.to_string()),
            unsupported: e.exit_code() == contract::EXIT_UNSUPPORTED,
        },
    })
}

/// Exact mode: each run of a Real step in a process of its own (this binary as `forkbench
/// real --runs 1`), its lines sent on as Line frames (header and context from the first run
/// only, run indexes renumbered). One process keeps growing its heap by a page or so per run
/// (what it allocates between runs), and a fork copies the parent's whole address space: in
/// one process the runs of `untouched` climbed 129-134 k instructions on Debian 6.12 x86_64, a
/// fresh process each time (with `norandmaps`) repeats its count.
fn run_real_per_process(
    step: usize,
    opts: &contract::RealOpts,
    emit: &mut Emit<'_>,
) -> io::Result<StepDone> {
    let failed = |exit_code: Option<i32>, error: String| StepDone {
        step,
        ok: false,
        exit_code,
        error: Some(error),
        unsupported: exit_code == Some(i32::from(contract::EXIT_UNSUPPORTED)),
    };
    for run in 0..opts.runs {
        let mut one = opts.clone();
        one.runs = 1;
        let out = Command::new("/proc/self/exe")
            .args(contract::Invocation::Real(one).args())
            .stdin(Stdio::null())
            .output()?;
        for text in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(mut line) = serde_json::from_str::<RunnerLine>(text) else {
                continue;
            };
            match &mut line {
                RunnerLine::Header(_) | RunnerLine::Context(_) if run > 0 => continue,
                RunnerLine::Run(r) => r.run_index = run,
                _ => {}
            }
            emit(FrameKind::Line, line.to_json().as_bytes())?;
        }
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr.lines().rev().find(|l| !l.trim().is_empty());
            return Ok(failed(
                out.status.code(),
                format!(
                    "run {run}: {}",
                    why.unwrap_or("forkbench real failed without a message")
                ),
            ));
        }
    }
    Ok(StepDone {
        step,
        ok: true,
        exit_code: Some(0),
        error: None,
        unsupported: false,
    })
}

/// Runs a program with stdout and stderr on one pipe, streaming what it writes as Output
/// frames; kills its process group once `timeout` has passed.
pub fn run_exec(
    step: usize,
    path: &str,
    args: &[String],
    timeout: Duration,
    emit: &mut Emit<'_>,
) -> io::Result<StepDone> {
    let failed = |error: String| StepDone {
        step,
        ok: false,
        exit_code: None,
        error: Some(error),
        unsupported: false,
    };
    let (mut reader, writer) = io::pipe()?;
    let child = {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(path);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0);
        cmd.spawn()
        // `cmd` drops here with its copies of the pipe's write end: EOF comes when the
        // program (and whatever it started) closes theirs.
    };
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Ok(failed(format!("cannot start {path}: {e}"))),
    };
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let mut buf = vec![0u8; OUTPUT_READ];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        let wait = nix::poll::PollTimeout::try_from(left.min(Duration::from_secs(60)))
            .unwrap_or(nix::poll::PollTimeout::NONE);
        let mut fds = [nix::poll::PollFd::new(
            reader.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, wait) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => emit(FrameKind::Output, &buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if timed_out {
        // The whole group: a test binary's own children go too.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let status = child.wait()?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (timed_out, status.code(), status.signal()) {
        (true, ..) => StepDone {
            exit_code: status.code(),
            ..failed(format!(
                "{path} timed out after {} s and was killed",
                timeout.as_secs()
            ))
        },
        (false, Some(0), _) => StepDone {
            step,
            ok: true,
            exit_code: Some(0),
            error: None,
            unsupported: false,
        },
        (false, Some(code), _) => StepDone {
            exit_code: Some(code),
            ..failed(format!("{path} exited with {code}"))
        },
        (false, None, sig) => failed(format!(
            "{path} was killed by signal {}",
            sig.map_or_else(|| "?".to_string(), |s| s.to_string())
        )),
    })
}

/// Reaps every exited child (PID 1 adopts orphans); never blocks. Not PID 1 (tests): nothing,
/// as a `waitpid(-1)` would take other threads' children.
fn reap_orphans() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    if std::process::id() != 1 {
        return;
    }
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// What the guest offers, from `sys` and `proc` (normally `/sys` and `/proc`).
pub fn collect_hello(sys: &Path, proc_root: &Path, mut notes: Vec<String>) -> GuestHello {
    let kernel_release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| {
            notes.push(format!("uname: {e}"));
            String::new()
        });
    let arch = contract::Arch::host()
        .map_or_else(|| std::env::consts::ARCH.to_string(), |a| a.to_string());
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_total_kib = fs::read_to_string(proc_root.join("meminfo"))
        .ok()
        .and_then(|t| meminfo_total_kib(&t))
        .unwrap_or_else(|| {
            notes.push("no MemTotal in /proc/meminfo".into());
            0
        });
    let thp_dir = sys.join("kernel/mm/transparent_hugepage");
    let thp = fs::read_to_string(thp_dir.join("enabled"))
        .ok()
        .map(|t| t.trim().to_string());
    let mthp_sizes = mthp_sizes(&thp_dir);
    let sources: Vec<String> = fs::read_dir(sys.join("bus/event_source/devices"))
        .map(|d| {
            let mut v: Vec<String> = d
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    let pmu = sources.iter().find(|s| is_cpu_pmu(s)).cloned();
    if pmu.is_none() {
        notes.push(format!(
            "no CPU PMU among the event sources ({})",
            if sources.is_empty() {
                "none".to_string()
            } else {
                sources.join(", ")
            }
        ));
    }
    GuestHello {
        kernel_release,
        arch,
        page_size,
        cpus,
        mem_total_kib,
        thp,
        mthp_sizes,
        pmu,
        clock: if fs::read_to_string(proc_root.join("cmdline"))
            .is_ok_and(|c| crate::plan::exact_mode(&c))
        {
            contract::Clock::Icount
        } else {
            contract::Clock::Wall
        },
        notes,
    }
}

fn is_cpu_pmu(name: &str) -> bool {
    matches!(name, "cpu" | "cpu_core" | "cpu_atom")
        || name.starts_with("armv8_")
        || name.starts_with("armv9_")
        || name.starts_with("arm_cortex")
        || name.starts_with("apple_")
}

fn meminfo_total_kib(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// `hugepages-<N>kB` directories, smallest first, as `<N>kB`.
fn mthp_sizes(thp_dir: &Path) -> Vec<String> {
    let mut sizes: Vec<u64> = fs::read_dir(thp_dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("hugepages-")?
                        .strip_suffix("kB")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_unstable();
    sizes.into_iter().map(|kb| format!("{kb}kB")).collect()
}

/// Mounts what the runner reads; a filesystem already there is fine. Returns notes.
fn mount_filesystems() -> Vec<String> {
    use nix::mount::{MsFlags, mount};
    let mut notes = Vec::new();
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let table: [(&str, &str, MsFlags); 5] = [
        ("proc", "/proc", nodev | MsFlags::MS_NOEXEC),
        ("sysfs", "/sys", nodev | MsFlags::MS_NOEXEC),
        ("devtmpfs", "/dev", MsFlags::MS_NOSUID),
        ("tmpfs", "/run", nodev),
        ("tmpfs", "/tmp", nodev),
    ];
    for (fstype, target, flags) in table {
        if let Err(e) = fs::create_dir_all(target) {
            notes.push(format!("mkdir {target}: {e}"));
            continue;
        }
        match mount(Some(fstype), target, Some(fstype), flags, None::<&str>) {
            Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
            Err(e) => notes.push(format!("mount {fstype} on {target}: {e}")),
        }
    }
    notes
}

/// Opens the console on whichever of fds 0, 1, 2 is not open or is /dev/null (the kernel
/// opens the console for init only when the initramfs has /dev/console; without it, Rust's
/// runtime puts /dev/null there).
fn console_fds() -> Vec<String> {
    let mut notes = Vec::new();
    for fd in 0..=2 {
        let target = fs::read_link(format!("/proc/self/fd/{fd}"));
        if target.is_ok_and(|t| t != Path::new("/dev/null")) {
            continue;
        }
        let console = match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags_noctty()
            .open("/dev/console")
        {
            Ok(f) => f,
            Err(e) => {
                notes.push(format!("opening /dev/console for fd {fd}: {e}"));
                continue;
            }
        };
        use std::os::fd::AsRawFd;
        // SAFETY: both descriptors are valid; fd 0-2 are the standard streams, which this
        // process means to replace, and std holds no other reference to them.
        if unsafe { libc::dup2(console.as_raw_fd(), fd) } == -1 {
            notes.push(format!("dup2 onto fd {fd}: {}", io::Error::last_os_error()));
        }
    }
    notes
}

trait NoCtty {
    fn custom_flags_noctty(&mut self) -> &mut Self;
}

impl NoCtty for fs::OpenOptions {
    fn custom_flags_noctty(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOCTTY)
    }
}

/// Raw, no echo on the console (the host's commands must not come back as console text);
/// output keeps `\n` → `\r\n` so a person watching sees lines.
fn console_raw() -> Vec<String> {
    use nix::sys::termios::{OutputFlags, SetArg, cfmakeraw, tcgetattr, tcsetattr};
    let stdin = io::stdin();
    let result = tcgetattr(stdin.as_fd()).and_then(|mut t| {
        cfmakeraw(&mut t);
        t.output_flags |= OutputFlags::OPOST | OutputFlags::ONLCR;
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &t)
    });
    match result {
        Ok(()) => Vec::new(),
        Err(e) => vec![format!("console raw mode: {e}")],
    }
}

/// Says goodbye, kills what is left, syncs and powers off. If power-off is refused, exits
/// (the kernel then panics, and `panic=-1` with `-no-reboot` stops QEMU).
fn power_off(reason: &str) -> ! {
    let _ = send(FrameKind::Bye, reason.as_bytes());
    // SAFETY: kill(-1) signals every process but this one (PID 1); no memory is involved.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    reap_orphans();
    nix::unistd::sync();
    let e = match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    eprintln!("forkbench guest init: power off failed: {e}");
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, FrameDecoder};
    use crate::plan::GuestPlan;

    /// Collects what a step sends, through the real encoder and decoder.
    fn capture(f: impl FnOnce(&mut Emit<'_>)) -> Vec<Frame> {
        let mut seq = 0;
        let mut text = String::new();
        f(&mut |kind, payload| {
            text.push_str(&encode(kind, seq, payload));
            seq += 1;
            Ok(())
        });
        FrameDecoder::new()
            .push(text.as_bytes())
            .into_iter()
            .map(|r| r.unwrap())
            .collect()
    }

    fn exec(path: &str, args: &[&str], timeout_secs: u64) -> GuestStep {
        GuestStep::Exec {
            path: path.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            timeout_secs,
        }
    }

    fn done(frames: &[Frame]) -> Vec<StepDone> {
        frames
            .iter()
            .filter(|f| f.kind == FrameKind::StepDone)
            .map(|f| serde_json::from_slice(&f.payload).unwrap())
            .collect()
    }

    fn output(frames: &[Frame]) -> String {
        frames
            .iter()
            .filter(|f| f.kind == FrameKind::Output)
            .map(|f| String::from_utf8_lossy(&f.payload).into_owned())
            .collect()
    }

    #[test]
    fn exec_step_streams_merged_output_and_exit_code() {
        let plan = GuestPlan::new(
            false,
            vec![exec(
                "/bin/sh",
                &["-c", "echo out; echo err >&2; exit 3"],
                60,
            )],
        );
        let frames = capture(|emit| serve(&plan, &mut io::empty(), emit).unwrap());
        let out = output(&frames);
        assert!(out.contains("out\n") && out.contains("err\n"), "{out:?}");
        let d = done(&frames);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].ok, d[0].exit_code), (false, Some(3)));
    }

    #[test]
    fn exec_step_past_its_timeout_is_killed_with_its_children() {
        // The shell's child keeps the pipe open: only killing the group ends the step.
        let plan = GuestPlan::new(
            false,
            vec![exec("/bin/sh", &["-c", "sleep 300 & sleep 300"], 1)],
        );
        let frames = capture(|emit| serve(&plan, &mut io::empty(), emit).unwrap());
        let d = done(&frames);
        assert!(!d[0].ok);
        assert!(
            d[0].error
                .as_deref()
                .unwrap()
                .contains("timed out after 1 s"),
            "{d:?}"
        );
    }

    #[test]
    fn a_missing_program_is_a_failed_step() {
        let plan = GuestPlan::new(false, vec![exec("/nonexistent/forkbench-test", &[], 5)]);
        let frames = capture(|emit| serve(&plan, &mut io::empty(), emit).unwrap());
        let d = done(&frames);
        assert!(
            d[0].error.as_deref().unwrap().starts_with("cannot start"),
            "{d:?}"
        );
    }

    #[test]
    fn interactive_plan_runs_what_the_host_asks_until_poweroff() {
        let plan = GuestPlan::new(
            true,
            vec![
                exec("/bin/sh", &["-c", "echo zero"], 60),
                exec("/bin/sh", &["-c", "echo one"], 60),
            ],
        );
        let mut commands =
            io::Cursor::new(b"go 1\r\n\ngo 0\rbogus\ngo 7\npoweroff\ngo 0\n".to_vec());
        let frames = capture(|emit| serve(&plan, &mut commands, emit).unwrap());
        let steps: Vec<(usize, bool)> = done(&frames).iter().map(|d| (d.step, d.ok)).collect();
        assert_eq!(steps, [(1, true), (0, true), (7, false)]);
        assert_eq!(output(&frames), "one\nzero\n");
        let errors: Vec<&Frame> = frames
            .iter()
            .filter(|f| f.kind == FrameKind::Error)
            .collect();
        assert_eq!(errors.len(), 1);
        assert!(String::from_utf8_lossy(&errors[0].payload).contains("bogus"));
    }

    #[test]
    fn hello_reads_thp_mthp_and_pmu_from_the_given_roots() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        let thp = sys.join("kernel/mm/transparent_hugepage");
        for kb in [2048, 64, 16] {
            fs::create_dir_all(thp.join(format!("hugepages-{kb}kB"))).unwrap();
        }
        fs::write(thp.join("enabled"), "always [madvise] never\n").unwrap();
        for d in ["software", "armv8_pmuv3_0", "tracepoint"] {
            fs::create_dir_all(sys.join("bus/event_source/devices").join(d)).unwrap();
        }
        let proc_root = dir.path().join("proc");
        fs::create_dir_all(&proc_root).unwrap();
        fs::write(
            proc_root.join("meminfo"),
            "MemTotal:        1004560 kB\nMemFree: 1 kB\n",
        )
        .unwrap();
        fs::write(
            proc_root.join("cmdline"),
            "console=ttyS0 forkbench.clock=icount\n",
        )
        .unwrap();
        let h = collect_hello(&sys, &proc_root, vec!["a note".into()]);
        assert_eq!(h.clock, contract::Clock::Icount);
        assert_eq!(h.thp.as_deref(), Some("always [madvise] never"));
        assert_eq!(h.mthp_sizes, ["16kB", "64kB", "2048kB"]);
        assert_eq!(h.pmu.as_deref(), Some("armv8_pmuv3_0"));
        assert_eq!(h.mem_total_kib, 1_004_560);
        assert_eq!(h.notes, ["a note"]);
        assert!(h.page_size >= 4096);
        assert!(!h.kernel_release.is_empty());

        let bare = collect_hello(&dir.path().join("none"), &dir.path().join("none"), vec![]);
        assert_eq!(bare.clock, contract::Clock::Wall);
        assert_eq!((bare.thp, bare.pmu), (None, None));
        assert!(
            bare.notes.iter().any(|n| n.contains("no CPU PMU")),
            "{:?}",
            bare.notes
        );
    }
}
