from typing import Any

def item_terms(u: int, k: int, shrinkage: float, base_u: float, /, *arrays: Any) -> Any: ...
def user_terms_many(
    u: int,
    k: int,
    min_support: int,
    shrinkage: float,
    has_min: bool,
    min_similarity: float,
    mu: float,
    reg_users: float,
    /,
    *arrays: Any,
) -> tuple[float, int]: ...
def scatter_cell(
    x: int, d0: int, d1: int, d2: int, row_x: int, col_x: int, diag: int, /, *arrays: Any
) -> None: ...
