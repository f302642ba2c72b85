"""The header every benchmark report starts with: when, which commit, what machine."""
import datetime
import os
import platform
import subprocess


def header(title, command):
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    dirty = " (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return (f"## {title}: run of {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n\n"
            f"commit {git('rev-parse', '--short', 'HEAD')}{dirty}; Linux {platform.release()}; "
            f"{os.cpu_count()} × {cpu}, {mem / 2**20:.0f} GiB; `{command}`\n")
