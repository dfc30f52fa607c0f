"""The config schema: every kind's config class and the sections they share, as pydantic
models that forbid unknown keys (docs/config.md lists every field, generated from these).

`load_config` validates a YAML path or a dict into one of them (`Config`, the union tagged by
`kind`); `config_dict` gives the resolved config back as plain data; `KINDS` maps each kind's
name to its config class, runner and figures (`Kind`).
"""

from ._config import (
    DynamicsConfig as DynamicsConfig,
    InitConfig as InitConfig,
    ModelConfig as ModelConfig,
    NetworkSectionConfig as NetworkSectionConfig,
    NetworkSizeConfig as NetworkSizeConfig,
    SolverConfig as SolverConfig,
    StandsFor as StandsFor,
    config_dict as config_dict,
)
from ._errors import ConfigError as ConfigError
from ._kinds import KINDS as KINDS, Config as Config, load_config as load_config
from ._kinds.base import Kind as Kind
from ._kinds.compare import CompareConfig as CompareConfig
from ._kinds.network import NetworkConfig as NetworkConfig
from ._kinds.phase_portrait import (
    PhasePortraitConfig as PhasePortraitConfig,
    PortraitSection as PortraitSection,
)
from ._kinds.sensitivity import (
    SensitivityConfig as SensitivityConfig,
    SensitivitySection as SensitivitySection,
)
from ._kinds.sensitivity_map import (
    MapSection as MapSection,
    SensitivityMapConfig as SensitivityMapConfig,
)
from ._kinds.sweep import SweepConfig as SweepConfig, SweepSection as SweepSection
from ._kinds.trajectory import TrajectoryConfig as TrajectoryConfig
