"""Outcome trends for any instrument (`$outcome-trend`, issue 21 point 5): points read from the FHIR server
(`points.py`, `read.py`) and the trend computed from them and the instrument's definition (`trend.py`)."""

from service.outcomes.points import Point, counted_once, read_points
from service.outcomes.read import outcome_trend
from service.outcomes.trend import summarise

__all__ = ["Point", "counted_once", "outcome_trend", "read_points", "summarise"]
