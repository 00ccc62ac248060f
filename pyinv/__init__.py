"""pyinv: a PostgreSQL-native inventory engine. The rules live in SQL; this package applies the
migrations, calls the functions, runs maintenance and offers the ``pyinv`` command."""

from .client import Inventory
from .errors import (
    AlreadyExists,
    AppendOnly,
    Conflict,
    IdempotencyConflict,
    InsufficientStock,
    InvalidArgument,
    InvalidInput,
    InvalidQuantity,
    InventoryError,
    LocationNotFound,
    NoReservation,
    NotFound,
    PermissionDenied,
    ProductNotFound,
    ProductUnavailable,
    QuantityMismatch,
    ReservationExpired,
    Retryable,
)

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "AppendOnly",
    "Conflict",
    "IdempotencyConflict",
    "InsufficientStock",
    "InvalidArgument",
    "InvalidInput",
    "InvalidQuantity",
    "Inventory",
    "InventoryError",
    "LocationNotFound",
    "NoReservation",
    "NotFound",
    "PermissionDenied",
    "ProductNotFound",
    "ProductUnavailable",
    "QuantityMismatch",
    "ReservationExpired",
    "Retryable",
    "__version__",
]
