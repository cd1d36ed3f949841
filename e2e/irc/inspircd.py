"""A throwaway InspIRCd (Debian's `inspircd` package) for end-to-end tests and benchmarks.

`InspIRCd(workdir).start()` writes its own config in `workdir` (a free loopback port, no DNS, no ident,
generous flood limits, `chanhistory` and the IRCv3 modules Debian ships), runs the server in the
foreground and waits until it accepts connections. `stop()` ends it.
"""

import os
import shutil
import socket
import subprocess
import time

MODULES_DIR = "/usr/lib/inspircd/modules"
# No `sasl`: it needs a services server. IRCv3 and friends the bridge uses where offered; each is loaded only if this InspIRCd has it.
WANTED_MODULES = [
    "cap", "ircv3", "ircv3_accounttag", "ircv3_batch", "ircv3_capnotify", "ircv3_chghost", "ircv3_ctctags",
    "ircv3_echomessage", "ircv3_invitenotify", "ircv3_labeledresponse", "ircv3_msgid", "ircv3_servertime",
    "chanhistory", "chghost", "namesx", "uhnames", "monitor", "setname",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary():
    found = shutil.which("inspircd") or "/usr/sbin/inspircd"
    if not os.path.exists(found):
        raise RuntimeError("InspIRCd is not installed: apt-get install -y inspircd")
    return found


def available_modules():
    names = []
    for name in WANTED_MODULES:
        if os.path.exists(os.path.join(MODULES_DIR, f"m_{name}.so")):
            names.append(name)
    return names


class InspIRCd:
    def __init__(self, workdir, history_lines=100):
        self.dir = os.path.join(workdir, "inspircd")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.history_lines = history_lines
        # `o`: whoever creates a channel is its op; `H`: every channel keeps history for chanhistory to replay.
        self.default_modes = f"ntoH {history_lines}:1d"
        self.proc = None
        self.modules = available_modules()

    def config(self):
        modules = "\n".join(f'<module name="{m}">' for m in self.modules)
        return f"""<server name="irc.test" description="e2e" network="Testnet">
<admin name="e2e" nick="e2e" email="e2e@localhost">
<bind address="127.0.0.1" port="{self.port}" type="clients">
<connect allow="*" timeout="60" threshold="1000" pingfreq="120" hardsendq="1048576" softsendq="65536"
         recvq="65536" localmax="1000" globalmax="1000" useident="no" resolvehostnames="no" fakelag="off" limit="5000"
         commandrate="100000">
<class name="All" commands="*" privs="*" usermodes="*" chanmodes="*">
<type name="Admin" classes="All">
<oper name="admin" password="admin" host="*@*" type="Admin">
<channels users="100" opers="100">
<dns server="127.0.0.1" timeout="1">
<pid file="{self.dir}/inspircd.pid">
<options prefixquit="Quit: " syntaxhints="no" announcets="yes" hostintopic="yes" defaultmodes="{self.default_modes}">
<performance netbuffersize="10240" somaxconn="128" softlimit="12800" clonesonconnect="no" quietbursts="yes">
<security hideserver="" userstats="Pu" flatlinks="no" hidesplits="no" hideulines="no" hidebans="no"
          maxtargets="20" runasuser="" runasgroup="">
<limits maxnick="30" maxchan="64" maxmodes="20" maxident="11" maxhost="64" maxquit="255" maxtopic="307"
        maxkick="255" maxreal="128" maxgecos="128" maxaway="200">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{self.dir}/ircd.log">
<disabled commands="" usermodes="" chanmodes="" fakenonexistant="no">
<files motd="{self.dir}/motd.txt">
<path configdir="{self.dir}" datadir="{self.dir}" logdir="{self.dir}" moduledir="{MODULES_DIR}">
{modules}
<chanhistory bots="yes" maxlines="{self.history_lines}" prefixmsg="yes">
"""

    def start(self):
        with open(os.path.join(self.dir, "inspircd.conf"), "w") as f:
            f.write(self.config())
        with open(os.path.join(self.dir, "motd.txt"), "w") as f:
            f.write("end-to-end test server\n")
        self.log = open(os.path.join(self.dir, "stdout.log"), "w")
        args = [binary(), "--nofork", "--nopid", "--config", os.path.join(self.dir, "inspircd.conf")]
        if os.geteuid() == 0:
            args.append("--runasroot")  # CI and the dev machines run as root
        self.proc = subprocess.Popen(args,
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"inspircd exited with {self.proc.returncode}; see {self.dir}/stdout.log")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("inspircd did not listen in 30 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
