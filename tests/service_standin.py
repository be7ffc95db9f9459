#!/usr/bin/env python3
"""Stand-in for systemctl and launchctl (chosen by the name it is run as), for tests/test_service.

It records every call, one line each, in $STANDIN_DIR/calls.log and answers as the real tool
does: it reads the unit or plist that `dig-relay install` wrote, `start`/`kickstart`/`bootstrap`
really start the relay from that definition (its ExecStart/ProgramArguments and its
Environment), and `stop`/`kill SIGTERM`/`bootout` send it SIGTERM. Unit files live under
$DIG_RELAY_SERVICE_ROOT (system scope) and $HOME (user scope), as dig-relay writes them.

$STANDIN_USER_MANAGER=down makes the per-user manager unreachable, as when root runs
`systemctl --user` ("Failed to connect to bus") or `launchctl print gui/<uid>/...` from a session
without that domain; those are the "unknown" cases of SPEC section 9."""
import os
import plistlib
import shlex
import signal
import subprocess
import sys
import time

UNIT = "dignetwork-dig-relay.service"
LABEL = "net.dignetwork.dig-relay"
STATE = os.environ["STANDIN_DIR"]
ROOT = os.environ.get("DIG_RELAY_SERVICE_ROOT", "")
HOME = os.environ.get("HOME", "")


def log_call(argv):
    # Writable by every user a test runs dig-relay as (root and nobody share one log).
    fd = os.open(os.path.join(STATE, "calls.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.fchmod(fd, 0o666)
    except OSError:
        pass
    with os.fdopen(fd, "a") as f:
        f.write(" ".join([os.path.basename(argv[0])] + argv[1:]) + "\n")


def fail(text, code):
    sys.stderr.write(text + "\n")
    sys.exit(code)


def pid_file(scope):
    return os.path.join(STATE, scope + ".pid")


def running(scope):
    try:
        with open(pid_file(scope)) as f:
            pid = int(f.read())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def launch(scope, argv, env):
    if running(scope):
        return
    full = dict(os.environ)
    full.update(env)
    log = open(os.path.join(STATE, scope + ".relay.log"), "ab")
    p = subprocess.Popen(argv, env=full, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True)
    with open(pid_file(scope), "w") as f:
        f.write(str(p.pid))


def terminate(scope):
    pid = running(scope)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done == pid:
            break
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.02)
    os.unlink(pid_file(scope))


def specifiers(text):
    """systemd's %-specifiers the unit uses: %% and %S (the state directory root)."""
    return text.replace("%%", "\0").replace("%S", os.path.join(STATE, "var-lib")).replace("\0", "%")


def systemctl(args):
    user = args[:1] == ["--user"]
    if user:
        args = args[1:]
        if os.environ.get("STANDIN_USER_MANAGER") == "down":
            fail("Failed to connect to bus: No medium found", 1)
    scope = "user" if user else "system"
    if user:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(HOME, ".config")
        unit_dir = os.path.join(base, "systemd", "user")
        wants = os.path.join(unit_dir, "default.target.wants")
    else:
        unit_dir = ROOT + "/etc/systemd/system"
        wants = os.path.join(unit_dir, "multi-user.target.wants")
    verb, rest = args[0], args[1:]
    path = os.path.join(unit_dir, UNIT)
    if verb == "daemon-reload":
        return
    if rest != [UNIT]:
        fail("stand-in: unexpected arguments %r" % rest, 64)
    exists = os.path.exists(path)
    if verb == "cat":
        if not exists:
            fail("No files found for %s." % UNIT, 1)
        sys.stdout.write("# %s\n%s" % (path, open(path).read()))
    elif verb == "enable":
        if not exists:
            fail("Failed to enable unit: Unit file %s does not exist." % UNIT, 1)
        os.makedirs(wants, exist_ok=True)
        link = os.path.join(wants, UNIT)
        if not os.path.lexists(link):
            os.symlink(path, link)
    elif verb == "disable":
        if not exists:
            fail("Failed to disable unit: Unit file %s does not exist." % UNIT, 1)
        link = os.path.join(wants, UNIT)
        if os.path.lexists(link):
            os.unlink(link)
    elif verb == "start":
        if not exists:
            fail("Failed to start %s: Unit %s not found." % (UNIT, UNIT), 5)
        argv, env = None, {}
        for line in open(path):
            line = line.strip()
            if line.startswith("ExecStart="):
                argv = shlex.split(specifiers(line[len("ExecStart="):]).replace("$$", "$"))
            elif line.startswith("Environment="):
                k, v = shlex.split(specifiers(line[len("Environment="):]))[0].split("=", 1)
                env[k] = v
        launch(scope, argv, env)
    elif verb == "stop":
        if not exists and running(scope) is None:
            fail("Failed to stop %s: Unit %s not loaded." % (UNIT, UNIT), 5)
        terminate(scope)
    else:
        fail("stand-in: unknown verb %s" % verb, 64)


def launchctl(args):
    def domain_scope(target):
        if target.startswith("system"):
            return "system"
        if target.startswith("gui/"):
            if os.environ.get("STANDIN_USER_MANAGER") == "down":
                fail("Bootstrap failed: 125: Domain does not support specified action", 125)
            return "user"
        fail("stand-in: unexpected domain %s" % target, 64)

    def plist_path(scope):
        if scope == "system":
            return ROOT + "/Library/LaunchDaemons/%s.plist" % LABEL
        return os.path.join(HOME, "Library", "LaunchAgents", "%s.plist" % LABEL)

    loaded = lambda scope: os.path.exists(os.path.join(STATE, scope + ".loaded"))
    verb = args[0]
    if verb == "print":
        scope = domain_scope(args[1])
        if not loaded(scope):
            fail("Could not find service \"%s\" in domain for port" % LABEL, 113)
        print("%s = {\n\tstate = %s\n}" % (args[1], "running" if running(scope) else "waiting"))
    elif verb == "bootstrap":
        scope = domain_scope(args[1])
        if loaded(scope):
            fail("Bootstrap failed: 5: Input/output error", 5)
        with open(args[2], "rb") as f:
            plist = plistlib.load(f)   # also proves the plist is well-formed
        if plist["Label"] != LABEL or args[2] != plist_path(scope):
            fail("stand-in: plist label or path mismatch", 64)
        open(os.path.join(STATE, scope + ".loaded"), "w").close()
        if plist.get("RunAtLoad"):
            launch(scope, plist["ProgramArguments"], plist.get("EnvironmentVariables", {}))
    elif verb == "bootout":
        scope = domain_scope(args[1])
        if not loaded(scope):
            fail("Boot-out failed: 3: No such process", 3)
        terminate(scope)
        os.unlink(os.path.join(STATE, scope + ".loaded"))
    elif verb == "kickstart":
        scope = domain_scope(args[1])
        if not loaded(scope):
            fail("Could not find service \"%s\" in domain for port" % LABEL, 113)
        with open(plist_path(scope), "rb") as f:
            plist = plistlib.load(f)
        launch(scope, plist["ProgramArguments"], plist.get("EnvironmentVariables", {}))
    elif verb == "kill":
        scope = domain_scope(args[2])
        if not loaded(scope):
            fail("Could not find service \"%s\" in domain for port" % LABEL, 113)
        terminate(scope)
    else:
        fail("stand-in: unknown verb %s" % verb, 64)


def main():
    log_call(sys.argv)
    tool = os.path.basename(sys.argv[0])
    if tool == "systemctl":
        systemctl(sys.argv[1:])
    elif tool == "launchctl":
        launchctl(sys.argv[1:])
    else:
        fail("stand-in: run me as systemctl or launchctl", 64)


main()
