"""mockserver: a local mock of the OpenAI chat completions API, driven by YAML scenarios."""

from .app import create_app
from .core.errors import APIError, MockServerError, Problem, ScenarioError
from .core.profiles import APIFACTORY, OPENAI, PROFILES, Profile
from .scenarios.loader import load_data, load_paths, load_text
from .scenarios.scenario import Scenario
from .server import MockServer
from .state.journal import Entry, Journal
from .state.live import Options

__all__ = [
    "APIFACTORY",
    "OPENAI",
    "PROFILES",
    "APIError",
    "Entry",
    "Journal",
    "MockServer",
    "MockServerError",
    "Options",
    "Problem",
    "Profile",
    "Scenario",
    "ScenarioError",
    "create_app",
    "load_data",
    "load_paths",
    "load_text",
]
