"""Demand forecasting: the local engine (default) and BigQuery ML ARIMA_PLUS statements."""

from .anomalies import ANOMALY_COLUMNS, Detection, detect_anomalies
from .backtest import ACCURACY_COLUMNS, backtest
from .engine import DAILY_COLUMNS, PROTECTION_COLUMNS, ForecastResult, forecast

__all__ = ["ACCURACY_COLUMNS", "ANOMALY_COLUMNS", "DAILY_COLUMNS", "PROTECTION_COLUMNS", "Detection",
           "ForecastResult", "backtest", "detect_anomalies", "forecast"]
