//! Third-party programs, native vs emu: Debian's statically linked packages (bash, zsh,
//! mksh, lksh, sash, e2fsck, gpgv, dar), a statically linked Go program (shfmt), a Rust
//! program built from crates.io (ripgrep) and SQLite's shell built from Debian's source.
//! Each runs natively and under `emu run` with the same arguments, stdin, environment and
//! working directory; stdout, stderr and exit status must be identical.
//!
//! `.ci/run` installs the packages and runs `tests/third_party/prepare.sh`, which builds
//! ripgrep and the SQLite shell into `target/third-party/bin`. A program that is missing
//! fails its case with what to install.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A program, found where its package puts it (or where prepare.sh builds it).
fn program(path: &str, how: &str) -> Result<PathBuf, String> {
    let p = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/third-party/bin").join(path)
    };
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("{} is missing: {how} (.ci/run does)", p.display()))
    }
}

/// Runs `prog args` natively and under emu in `dir` with `stdin`; Err describes a
/// difference.
fn compare(dir: &Path, prog: &Path, args: &[&str], stdin: &[u8]) -> Result<(), String> {
    compare_with_path(dir, prog, args, stdin, "/usr/bin:/bin")
}

/// [`compare`] with `PATH` set to `path`.
fn compare_with_path(
    dir: &Path,
    prog: &Path,
    args: &[&str],
    stdin: &[u8],
    path: &str,
) -> Result<(), String> {
    let setup = |cmd: &mut Command| {
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", path)
            .env("HOME", "/nonexistent")
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .env("GLIBC_TUNABLES", GLIBC_TUNABLES);
    };
    let mut native = Command::new(prog);
    native.args(args);
    setup(&mut native);
    let n = run_with_stdin(native, stdin);
    let mut e = emu();
    e.args(["run", "--max-insns", "20000000000", "--allow-read"]).arg(dir).arg(prog).args(args);
    setup(&mut e);
    let g = run_with_stdin(e, stdin);
    if n.stdout == g.stdout && n.stderr == g.stderr && n.status.code() == g.status.code() {
        Ok(())
    } else {
        Err(format!("{} {args:?} differs\nnative: {}\nemu: {}", prog.display(), show(&n), show(&g)))
    }
}

/// A shell script using builtins only (programs run by a shell are in
/// `shells_run_programs`):
/// functions, command substitution, subshells and their exit status, pipelines of
/// builtins, loops, case, traps, a background job and wait (zsh renices it), stdin.
/// No here-documents: zsh and mksh write them to files in /tmp, which emu's sandbox
/// does not allow.
const SCRIPT: &str = r#"f() { x=$1; echo "f got $x"; return $((x % 3)); }
for i in 1 2 3 4 5; do f $i; echo "status $?"; done
x=$(echo inner; exit 3); echo "subst [$x] $?"
( exit 7 ); echo "subshell $?"
echo piped | { read -r line; echo "read: $line"; }
n=0; while [ $n -lt 50 ]; do n=$((n+1)); done; echo "n=$n"
case foo.c in *.c) echo C;; *) echo other;; esac
lines() { while read -r l; do echo "> $l"; done; }
{ echo alpha; echo beta; } | lines
trap 'echo trapped' USR1; kill -USR1 $$; echo after-trap
{ echo bg; exit 4; } & wait $!; echo "bg status $?"
acc=; while read -r l; do acc="$acc$l;"; done; echo "stdin says: $acc"
"#;

fn shell(prog: &str, how: &str) -> Result<(), String> {
    let dir = scratch(&format!("tp-{}", prog.rsplit('/').next().unwrap_or(prog)));
    std::fs::write(dir.join("s.sh"), SCRIPT).map_err(|e| e.to_string())?;
    compare(&dir, &program(prog, how)?, &["s.sh"], b"one\ntwo\n")
}

/// Runs every case and fails with all the differences.
fn check(cases: Vec<(&str, Result<(), String>)>) {
    let failed: Vec<String> =
        cases.into_iter().filter_map(|(n, r)| r.err().map(|e| format!("[{n}] {e}"))).collect();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn debian_static_shells() {
    check(vec![
        ("bash", shell("/bin/bash-static", "apt-get install bash-static")),
        ("zsh", shell("/bin/zsh-static", "apt-get install zsh-static")),
        ("mksh", shell("/bin/mksh-static", "apt-get install mksh")),
        ("lksh", shell("/bin/lksh", "apt-get install mksh")),
        ("sash", {
            let dir = scratch("tp-sash");
            std::fs::write(
                dir.join("s.sash"),
                "echo hello from sash\n-ls /nonexistent\necho done\n",
            )
            .map_err(|e| e.to_string())
            .and_then(|()| {
                compare(&dir, &program("/bin/sash", "apt-get install sash")?, &["s.sash"], b"")
            })
        }),
    ]);
}

/// What the shells of `shells_run_programs` run: static programs (a copy of busybox in
/// `bin/`, the only directory of PATH) found in PATH and by path, a pipeline of two of
/// them, a `#!` script, a missing command, `cd` (in the shell and in a subshell), and the
/// `exec` builtin last.
const EXEC_SCRIPT: &str = r#"echo start
busybox echo found in PATH
./bin/busybox echo by a relative path
busybox echo one two | busybox tr a-z A-Z
busybox printf '%s\n' c b a | busybox sort | busybox head -n 2
./hello.sh first 'second arg'
busybox false; echo "false gives $?"
no-such-command 2>/dev/null; echo "missing gives $?"
x=$(busybox basename /a/b/c.txt .txt); echo "substituted $x"
cd bin; ./busybox echo "cd: now in $(./busybox basename "$(./busybox pwd)")"; cd ..
(cd bin && busybox basename "$(busybox pwd)"); busybox basename "$(busybox pwd)"
cd no-such-dir 2>/dev/null || echo "cd to a missing directory fails"
exec busybox echo exec replaces the shell
echo not reached
"#;

/// A scratch directory for `shells_run_programs`: `bin/busybox`, `hello.sh` (a
/// `#!` script run by that busybox's sh) and the script `s.sh`.
fn exec_dir(tag: &str, script: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch(&format!("tp-exec-{tag}"));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    let busybox = program("/bin/busybox", "apt-get install busybox-static")?;
    std::fs::copy(&busybox, bin.join("busybox")).map_err(|e| e.to_string())?;
    let hello = format!(
        "#!{}/busybox sh
echo \"hello.sh: $# args: $1 / $2\"
busybox uname -s
",
        bin.display()
    );
    std::fs::write(dir.join("hello.sh"), hello).map_err(|e| e.to_string())?;
    std::fs::set_permissions(dir.join("hello.sh"), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("s.sh"), script).map_err(|e| e.to_string())?;
    Ok(dir)
}

#[test]
fn shells_run_programs() {
    let sh = |tag: &str, prog: &str, how: &str| -> Result<(), String> {
        let dir = exec_dir(tag, EXEC_SCRIPT)?;
        let path = format!("{}/bin", dir.display());
        compare_with_path(&dir, &program(prog, how)?, &["s.sh"], b"", &path)?;
        // The shell given a command line: one program, then `exec`.
        let cmd = "busybox echo via -c; exec busybox echo exec'd";
        compare_with_path(&dir, &program(prog, how)?, &["-c", cmd], b"", &path)
    };
    let sash = || -> Result<(), String> {
        // sash runs what is not one of its built-in commands by fork and exec.
        let script = "echo from sash\nbusybox echo busybox from sash\n./hello.sh x y\n-echo done\n";
        let dir = exec_dir("sash", script)?;
        let path = format!("{}/bin", dir.display());
        compare_with_path(
            &dir,
            &program("/bin/sash", "apt-get install sash")?,
            &["s.sh"],
            b"",
            &path,
        )
    };
    check(vec![
        ("bash", sh("bash", "/bin/bash-static", "apt-get install bash-static")),
        ("busybox sh", {
            let dir = exec_dir("busybox", EXEC_SCRIPT);
            dir.and_then(|dir| {
                let path = format!("{}/bin", dir.display());
                let bb = dir.join("bin/busybox");
                compare_with_path(&dir, &bb, &["sh", "s.sh"], b"", &path)
            })
        }),
        ("sash", sash()),
    ]);
}

#[test]
fn debian_static_tools() {
    let e2fsck = || {
        let dir = scratch("tp-e2fsck");
        // A file system last written in 2023, before emu's clock starts (2026), so that
        // neither run finds its times in the future.
        let st = Command::new("mke2fs")
            .args(["-q", "-t", "ext2", "-F", "fs.img", "2048"])
            .env("E2FSPROGS_FAKE_TIME", "1700000000")
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("mke2fs: {e} (apt-get install e2fsprogs)"))?;
        if !st.status.success() {
            return Err(format!("mke2fs failed: {}", show(&st)));
        }
        let prog = program("/sbin/e2fsck.static", "apt-get install e2fsck-static")?;
        compare(&dir, &prog, &["-fn", "fs.img"], b"")
    };
    let gpgv = || {
        // apt's clearsigned InRelease files against Debian's archive keyring.
        let dir = scratch("tp-gpgv");
        let lists = std::fs::read_dir("/var/lib/apt/lists").map_err(|e| e.to_string())?;
        let mut rel: Vec<PathBuf> = lists
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("_InRelease"))
            .collect();
        rel.sort();
        let rel = rel.first().ok_or("no InRelease file: run apt-get update")?;
        std::fs::copy(rel, dir.join("InRelease")).map_err(|e| e.to_string())?;
        std::fs::copy("/usr/share/keyrings/debian-archive-keyring.gpg", dir.join("keyring.gpg"))
            .map_err(|e| format!("debian-archive-keyring: {e}"))?;
        let prog = program("/usr/bin/gpgv-static", "apt-get install gpgv-static")?;
        let kr = dir.join("keyring.gpg");
        let kr = kr.to_str().ok_or("path")?;
        // emu's clock starts in 2026-01-01: newer signatures are "in the future".
        compare(&dir, &prog, &["--ignore-time-conflict", "--keyring", kr, "InRelease"], b"")?;
        std::fs::write(dir.join("InRelease"), b"-----BEGIN PGP SIGNED MESSAGE-----\nnothing\n")
            .map_err(|e| e.to_string())?;
        compare(&dir, &prog, &["--keyring", kr, "InRelease"], b"")
    };
    let dar = || {
        // C++ exceptions: libdar reports the failed start-up of GPGME (which looks for
        // gpgconf in PATH, here empty: emu could not run it anyway) by throwing, and dar
        // catches it and aborts.
        let dir = scratch("tp-dar");
        let prog = program("/usr/bin/dar_static", "apt-get install dar-static")?;
        for args in [&["-Q", "-l", "missing"][..], &["-Q", "--no-such-option"], &["-Q", "-V"]] {
            compare_with_path(&dir, &prog, args, b"", "/nonexistent")?;
        }
        Ok(())
    };
    check(vec![("e2fsck", e2fsck()), ("gpgv", gpgv()), ("dar", dar())]);
}

#[test]
fn go_and_rust_programs() {
    let shfmt = || {
        let dir = scratch("tp-shfmt");
        let src = "if [ -n \"$x\" ];then echo   yes;fi\nfor i in a b;do\necho $i\ndone\nf(){ echo hi ; }\n";
        std::fs::write(dir.join("in.sh"), src).map_err(|e| e.to_string())?;
        let prog = program("/usr/bin/shfmt", "apt-get install shfmt")?;
        compare(&dir, &prog, &["-i", "2", "in.sh"], b"")?;
        compare(&dir, &prog, &["-ln", "bash", "-s"], src.as_bytes())?;
        // A syntax error (with a formatting flag: no .editorconfig lookup up the tree).
        compare(&dir, &prog, &["-i", "4"], b"if then fi\n")
    };
    let rg = || {
        // Threads walk a tree of 40 files; only one matches, so the output does not
        // depend on their order.
        let dir = scratch("tp-rg");
        for i in 0..40 {
            let sub = dir.join(format!("d{}", i % 4));
            std::fs::create_dir_all(&sub).map_err(|e| e.to_string())?;
            let mut text = String::new();
            for l in 0..200 {
                text.push_str(&format!(
                    "file {i} line {l} {}\n",
                    if i == 17 && l == 99 { "needle" } else { "hay" }
                ));
            }
            std::fs::write(sub.join(format!("f{i}.txt")), text).map_err(|e| e.to_string())?;
        }
        let prog = program("rg", "run tests/third_party/prepare.sh")?;
        compare(&dir, &prog, &["-n", "-j", "4", "needle", "."], b"")?;
        compare(&dir, &prog, &["-c", "line 1[0-9]9 ", "d1/f17.txt"], b"")?;
        compare(&dir, &prog, &["-n", "b.t"], b"abc\nbat\nbit\nbot\n")?;
        compare(&dir, &prog, &["needle", "missing-dir"], b"")
    };
    check(vec![("shfmt", shfmt()), ("ripgrep", rg())]);
}

#[test]
fn sqlite_shell_reads_a_database_file() {
    let run = || {
        let dir = scratch("tp-sqlite");
        let prog = program("sqlite3", "run tests/third_party/prepare.sh")?;
        let made = Command::new(&prog)
            .current_dir(&dir)
            .args([
                "t.db",
                "create table t(a integer primary key, b text); \
                 with recursive c(x) as (select 1 union all select x+1 from c where x<1000) \
                 insert into t select x, printf('row %d', x) from c; create index ib on t(b);",
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if !made.status.success() {
            return Err(format!("creating the database: {}", show(&made)));
        }
        let script = ".mode list\nselect count(*), sum(a) from t;\n\
            select b from t where a % 250 = 0 order by a desc;\n\
            select b from t where b like 'row 99%' order by b;\n\
            pragma integrity_check;\n.tables\n.schema t\nselect * from missing;\n";
        compare(&dir, &prog, &["-readonly", "t.db"], script.as_bytes())
    };
    check(vec![("sqlite3", run())]);
}
