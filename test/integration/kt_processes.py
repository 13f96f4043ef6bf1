"""Shared by the Python suites that drive kt-host processes: thread-safe check/note output and
a kt-cluster process holding the suite's topics."""
import select
import subprocess
import threading
import time

failures = []  # what failed, in order
processes = []  # every process started; the suites kill what is left at exit
_print_lock = threading.Lock()


def check(condition, what):
    with _print_lock:
        print(("ok   " if condition else "FAIL ") + what, flush=True)
        if not condition:
            failures.append(what)


def note(text):
    with _print_lock:
        print("     " + text, flush=True)


def start_cluster(kt_cluster, topics):
    """Starts kt-cluster with 3 brokers and `topics` (name -> partitions); its bootstrap."""
    args = [kt_cluster, "--brokers", "3"]
    for topic, partitions in topics.items():
        args += ["--topic", f"{topic}:{partitions}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    processes.append(proc)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("bootstrap: "):
        raise RuntimeError(f"kt-cluster did not print its bootstrap ({line!r})")
    return line.split(" ", 1)[1].strip()


def timed(case, tmp):
    """Runs case(tmp); an exception is a failure (the other cases still run); notes the time."""
    started = time.time()
    try:
        case(tmp)
    except Exception as e:
        check(False, f"{case.__name__} raised {type(e).__name__}: {e}")
    note(f"{case.__name__}: {time.time() - started:.1f} s")


def stop_all():
    """Terminates (then kills) every process still running."""
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
