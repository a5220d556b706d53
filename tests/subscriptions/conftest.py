import pytest

from tests.factories import FeatureFactory


@pytest.fixture
def tokens():
    """The metered feature that `trial_plan` rate cards price."""
    return FeatureFactory(key="tokens")
