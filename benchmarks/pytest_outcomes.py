"""Run pytest in a subprocess and read back each test's outcome and duration from its JUnit XML."""
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Dict, List, Tuple

import harness

OUTCOME_OF_TAG = {"failure": "failed", "error": "error", "skipped": "skipped"}


@dataclass
class TestOutcome:
    name: str
    outcome: str  # passed, failed, error or skipped
    seconds: float  # the test call alone (fixtures not counted)
    message: str  # first line of the failure or skip reason
    details: str  # the failure's full text (output tail, traceback)


def run_pytest(paths: List[str], junit_xml: str, env: Dict[str, str],
               timeout: float) -> Tuple[int, List[TestOutcome], str]:
    """(pytest's exit code, the outcomes, its output's tail). The tests run in their own process group,
    so a timeout also ends the training processes they started."""
    cmd = [sys.executable, "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider", "-o", "junit_duration_report=call",
           f"--junitxml={junit_xml}"]
    proc = subprocess.Popen(cmd, cwd=harness.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise TimeoutError(f"pytest {' '.join(paths)} ran past {timeout:.0f} s; its output ended:\n{output[-1500:]}")
    if not os.path.exists(junit_xml):
        raise RuntimeError(f"pytest wrote no {junit_xml} (exit code {proc.returncode}); its output ended:\n"
                           f"{output[-1500:]}")
    return proc.returncode, read_junit(junit_xml), output[-1500:]


def read_junit(path: str) -> List[TestOutcome]:
    outcomes = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        outcome, message, details = "passed", "", ""
        for child in case:
            if child.tag in OUTCOME_OF_TAG:
                outcome = OUTCOME_OF_TAG[child.tag]
                message = (child.get("message") or "").strip().split("\n")[0][:200]
                details = child.text or ""
        outcomes.append(TestOutcome(case.get("name"), outcome, float(case.get("time", 0)), message, details))
    return outcomes
