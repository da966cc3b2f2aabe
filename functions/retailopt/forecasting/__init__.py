"""Demand forecasting: the local engine (default) and BigQuery ML ARIMA_PLUS statements."""

from .backtest import ACCURACY_COLUMNS, backtest
from .engine import DAILY_COLUMNS, PROTECTION_COLUMNS, ForecastResult, forecast

__all__ = ["ACCURACY_COLUMNS", "DAILY_COLUMNS", "PROTECTION_COLUMNS", "ForecastResult", "backtest",
           "forecast"]
