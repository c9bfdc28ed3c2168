from tests.hsm.conftest import bare_station, clock, home, station  # noqa: F401
