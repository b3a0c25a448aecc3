"""mockserver: a local mock of the OpenAI chat completions API, driven by YAML scenarios."""

from .app import create_app
from .errors import APIError, MockServerError, Problem, ScenarioError
from .journal import Entry, Journal
from .loader import load_data, load_paths, load_text
from .profiles import APIFACTORY, OPENAI, PROFILES, Profile
from .scenario import Scenario
from .server import MockServer
from .state import Options

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
