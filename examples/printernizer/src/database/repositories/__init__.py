"""
Its repositories, one per table.

The package re-exports each, as Printernizer's does (the old usage-statistics repository
among them, in its imports and its ``__all__``).
"""

from .base_repository import BaseRepository
from .job_repository import JobRepository
from .printer_repository import PrinterRepository
from .usage_statistics_repository import UsageStatisticsRepository

__all__ = [
    'BaseRepository',
    'JobRepository',
    'PrinterRepository',
    'UsageStatisticsRepository',
]
