"""What early stopping, the kept parameters and sweeps follow (`train.monitor`): the validation
RMSE of a rating model, or a validation ranking figure (`ndcg@10`, `recall@20`, ...) of the
lists a model makes."""

from __future__ import annotations

from dataclasses import dataclass

from aerec.errors import ConfigError
from aerec.topk_metrics import METRICS

RMSE = "rmse"
AUTO = "auto"
DEFAULT_RANKING = "ndcg@10"  # what implicit feedback and top-N models follow by default


@dataclass(frozen=True)
class Monitor:
    """One validation figure: `rmse` (lower is better) or `<metric>@<k>` (higher is better)."""

    metric: str = RMSE

    @property
    def key(self) -> str:
        """Its name in an epoch's record and in results.json: `valid_rmse`, `valid_ndcg@10`."""
        return f"valid_{self.metric}"

    @property
    def ranking(self) -> bool:
        """Whether it is a ranking figure (computed from full top-k lists)."""
        return self.metric != RMSE

    @property
    def higher_is_better(self) -> bool:
        """Ranking figures grow as lists improve; an error shrinks."""
        return self.ranking

    @property
    def k(self) -> int:
        """The cut-off of a ranking figure."""
        return int(self.metric.split("@")[1])

    def better(self, value: float, than: float) -> bool:
        """Whether `value` is better than `than`."""
        return value > than if self.higher_is_better else value < than

    def loss(self, value: float) -> float:
        """`value` as a figure to minimise (what a checkpoint's "best" and a minimising
        sweeper compare)."""
        return -value if self.higher_is_better else value


VALID_RMSE = Monitor(RMSE)


def parse_monitor(text: object) -> Monitor:
    """`train.monitor` as given (`auto` is resolved by `resolve_monitor`): ConfigError naming
    the key for anything aerec does not compute during validation."""
    valid = f"{RMSE}, or one of {', '.join(METRICS)} at a cut-off, e.g. ndcg@10"
    if text == RMSE:
        return Monitor(RMSE)
    if isinstance(text, str) and text.count("@") == 1:
        name, k = text.split("@")
        if name in METRICS and k.isdigit() and int(k) >= 1:
            return Monitor(f"{name}@{int(k)}")
    raise ConfigError(f"train.monitor={text!r} is not a figure aerec computes during "
                      f"validation; valid: {AUTO}, {valid}")


def resolve_monitor(text: object, *, predicts_ratings: bool, implicit: bool,
                    model_name: str) -> Monitor:
    """The monitor of a run: `auto` is the validation RMSE for a rating model on ratings and
    `ndcg@10` otherwise; RMSE is refused where there are no ratings to predict."""
    rates = predicts_ratings and not implicit
    if text == AUTO:
        return Monitor(RMSE if rates else DEFAULT_RANKING)
    monitor = parse_monitor(text)
    if monitor.metric == RMSE and not rates:
        why = (f"model={model_name} ranks items and predicts no ratings" if not predicts_ratings
               else "implicit feedback has no ratings to predict")
        raise ConfigError(f"train.monitor=rmse cannot be computed: {why}; follow a ranking "
                          f"figure, e.g. train.monitor={DEFAULT_RANKING}")
    return monitor
