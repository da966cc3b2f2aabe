"""Demand forecasting: the local engine (default) and BigQuery ML ARIMA_PLUS statements."""

from .engine import DAILY_COLUMNS, PROTECTION_COLUMNS, ForecastResult, forecast

__all__ = ["DAILY_COLUMNS", "PROTECTION_COLUMNS", "ForecastResult", "forecast"]
