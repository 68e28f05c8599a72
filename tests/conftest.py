"""Shared fixtures. Real MPII files live in ../shared/mpii beside the checkout; tests that
need them skip cleanly where that folder is absent (a user's machine)."""
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MPII = os.path.join(os.path.dirname(REPO_ROOT), "shared", "mpii")


@pytest.fixture(scope="session")
def shared_mpii():
    """Path of ../shared/mpii, or skip the test."""
    if not os.path.isdir(SHARED_MPII):
        pytest.skip("../shared/mpii is not available")
    return SHARED_MPII
