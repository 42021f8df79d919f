"""Settings, logging and health reporting shared by the acme services."""

from common.health import HealthReport, health_report
from common.settings import Settings, load_settings

__all__ = ["HealthReport", "Settings", "health_report", "load_settings"]
