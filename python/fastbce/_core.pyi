# Type stub of the private compiled module (cpp/bindings/module.cpp).
import enum

import numpy as np

class WeightKind(enum.Enum):
    none = 0
    scalar = 1
    per_row = 2
    per_element = 3

class NanPolicy(enum.Enum):
    propagate = 0
    omit = 1
    raise_ = 2

class Call:
    n: int
    row_size: int
    n_classes: int
    weight_kind: WeightKind
    weight_scalar: float
    pos_weight_scalar: float
    n_groups: int
    from_logits: bool
    epsilon: float
    label_smoothing: float
    gamma: float
    has_alpha: bool
    alpha: float
    nan_policy: NanPolicy
    validate: bool
    threads: int
    def __init__(self) -> None: ...

def compute(
    call: Call,
    y_true: np.ndarray,
    y_true_stride: int,
    y_pred: np.ndarray,
    y_pred_stride: int,
    weight: np.ndarray | None,
    weight_stride: int,
    pos_weight: np.ndarray | None,
    out: np.ndarray | None,
    out_stride: int,
    groups: np.ndarray | None,
    group_sums: np.ndarray | None,
) -> tuple[float, float, float, int, int]: ...

REPORT_SUMS: int
REPORT_SUMS_NO_ECE: int
REPORT_HIST_AFTER_CHECK: int

def report(
    call: Call,
    y_true: np.ndarray,
    y_true_stride: int,
    y_pred: np.ndarray,
    y_pred_stride: int,
    weight: np.ndarray | None,
    weight_stride: int,
    pos_weight: np.ndarray | None,
    logit_offset: float,
    ignore_label: float | None,
    sums: np.ndarray,
    hist: np.ndarray,
    mantissa_bits: int,
    slicings: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, int, np.ndarray | None]],
    top_k: int,
    written: np.ndarray | None = None,
) -> tuple[float, float, float, int, int, np.ndarray, np.ndarray]: ...
def compiled_targets() -> list[str]: ...
def supported_targets() -> list[str]: ...
def active_target() -> str: ...
def set_target(name: str) -> None: ...
def line_fetch() -> str: ...
def set_line_fetch(name: str) -> None: ...
def default_threads() -> int: ...
def threads_for(n: int, requested: int = 0) -> int: ...
def apply_math(name: str, x: np.ndarray) -> np.ndarray: ...
def _underflow_raised(
    call: Call, y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray | None = None
) -> tuple[bool, np.ndarray]: ...
def read_floor(arrays: list[np.ndarray], threads: int = 0) -> int: ...
def add_rows(into: np.ndarray, rows: np.ndarray, from_: np.ndarray) -> None: ...
def hist_auc(hist: np.ndarray, rows: np.ndarray) -> np.ndarray: ...

class KeyCodes:
    """Text keys in the order of their int64 codes, and the null key."""

    def __init__(self) -> None: ...
    def lookup(
        self,
        offsets: np.ndarray,
        data: np.ndarray,
        valid: np.ndarray | None,
        bit_offset: int,
        codes: np.ndarray,
    ) -> None: ...
    def add_unknown(
        self,
        offsets: np.ndarray,
        data: np.ndarray,
        valid: np.ndarray | None,
        bit_offset: int,
        codes: np.ndarray,
    ) -> None: ...
    def code(self, key: str) -> int: ...
    def find(self, key: str) -> int: ...
    def null_code(self) -> int: ...
    def find_null(self) -> int: ...
    def forget(self, mark: int) -> None: ...
    def order(self) -> np.ndarray: ...
    def keys(self, codes: np.ndarray) -> list[str | None]: ...
    def absorb(self, other: KeyCodes) -> np.ndarray: ...
    def __len__(self) -> int: ...

def int_range(values: np.ndarray) -> tuple[int, int]: ...
def entropies(base_rates: np.ndarray) -> np.ndarray: ...
def json_rows(pieces: list[str], names: list[str], columns: list[np.ndarray]) -> str: ...
def mark_ints(values: np.ndarray, base: int, marks: np.ndarray) -> None: ...
def gather_codes(values: np.ndarray, base: int, table: np.ndarray, out: np.ndarray) -> None: ...

# boolean parquet columns (fastbce.io.parquet_bools)
def parquet_page_headers(chunk: np.ndarray) -> np.ndarray: ...
def parquet_bool_page(
    page: np.ndarray,
    levels: int,
    num_values: int,
    encoding: int,
    out: np.ndarray,
    start: int,
    capacity_bits: int,
) -> int: ...

# derivatives for training (fastbce._grad)
class HessianMode(enum.Enum):
    exact = 0
    none = 1
    clipped = 2

def compute_grad(
    call: Call,
    y_true: np.ndarray,
    y_true_stride: int,
    logits: np.ndarray,
    logits_stride: int,
    weight: np.ndarray | None,
    weight_stride: int,
    pos_weight: np.ndarray | None,
    grad: np.ndarray,
    grad_stride: int,
    hess: np.ndarray | None,
    hess_stride: int,
    hessian: HessianMode,
) -> tuple[int, int]: ...
