"""Runs the binding tests (unittest discovery in this directory).

A skipped test counts as a failure when /dev/kvm is usable or LIBVMM_REQUIRE_KVM=1: on
our machines every test must really run. The last line is unittest's summary."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402


class StrictResult(unittest.TextTestResult):
    def addSkip(self, test, reason):
        if support.kvm_usable() or os.environ.get("LIBVMM_REQUIRE_KVM") == "1":
            try:
                raise AssertionError(f"skipped where /dev/kvm is usable: {reason}") from None
            except AssertionError:
                self.addFailure(test, sys.exc_info())
        else:
            super().addSkip(test, reason)


def main():
    pattern = sys.argv[1] if len(sys.argv) > 1 else "test*.py"
    suite = unittest.defaultTestLoader.discover(os.path.dirname(os.path.abspath(__file__)),
                                                pattern=pattern)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=StrictResult)
    result = runner.run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
