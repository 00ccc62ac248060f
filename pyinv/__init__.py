"""pyinv: a PostgreSQL-native inventory engine. The rules live in SQL; this package applies the
migrations, calls the functions, runs maintenance and offers the ``pyinv`` command."""

from .client import Inventory
from .errors import (
    AdjustmentNotFound,
    AlertNotFound,
    AlreadyExists,
    AppendOnly,
    Busy,
    Conflict,
    IdempotencyConflict,
    InsufficientStock,
    InvalidArgument,
    InvalidInput,
    InvalidQuantity,
    InvalidState,
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
    SelfApprovalForbidden,
)

__version__ = "0.2.0"

__all__ = [
    "AdjustmentNotFound",
    "AlertNotFound",
    "AlreadyExists",
    "AppendOnly",
    "Busy",
    "Conflict",
    "IdempotencyConflict",
    "InsufficientStock",
    "InvalidArgument",
    "InvalidInput",
    "InvalidQuantity",
    "InvalidState",
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
    "SelfApprovalForbidden",
    "__version__",
]
