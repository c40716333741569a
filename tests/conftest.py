"Shared pytest configuration: hypothesis without wall-clock deadlines (2 shared cores make them flaky), fixed seeds."
import os
from hypothesis import HealthCheck, settings

settings.register_profile("su_notes", deadline=None, max_examples=60, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "su_notes"))
os.environ.setdefault("SU_NOTES_PROGRESS", "0")
