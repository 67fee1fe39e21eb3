"""The Fronius and Shelly drivers: signs, nulls and failures, from the devices' real payloads."""
from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from freezegun import freeze_time

from home_energy.config import Secret
from home_energy.sources import MeterConfigError, MeterDataError, MeterUnavailableError
from home_energy.sources.fronius import FroniusSource, parse_meter_counters, parse_power_flow
from home_energy.sources.shelly import (
    ShellySource,
    parse_em1_status,
    parse_em1data_status,
    parse_em_status,
    parse_emdata_status,
)
from tests.fake_meters import FakeShelly, load_fixture


def flow(name: str, **site) -> dict:
    body = copy.deepcopy(load_fixture(name))
    body["Body"]["Data"]["Site"].update(site)
    return body


SYMO_DAY = "ha_symo_GetPowerFlowRealtimeData_day.json"
SYMO_NIGHT = "ha_symo_GetPowerFlowRealtimeData_night.json"
GEN24 = "ha_gen24_GetPowerFlowRealtimeData.json"
GEN24_BATTERY = "ha_gen24_storage_GetPowerFlowRealtimeData.json"


def test_fronius_importing_by_day_uses_the_devices_own_load():
    values = parse_power_flow(load_fixture(SYMO_DAY))
    assert values == {"grid_w": 1703.74, "solar_w": 1111.0, "battery_w": None, "battery_soc_percent": None,
                      "load_w": pytest.approx(2814.74)}


def test_fronius_night_pv_null_stays_null_not_zero():
    values = parse_power_flow(load_fixture(SYMO_NIGHT))
    assert values["solar_w"] is None
    assert values["grid_w"] == pytest.approx(975.31) and values["load_w"] == pytest.approx(975.31)
    # pyfronius's night sample: a meter in the consumption path, inverter P null as well
    values = parse_power_flow(load_fixture("pyfronius_GetPowerFlowRealtimeData_night_load_meter.json"))
    assert values["solar_w"] is None and values["load_w"] == pytest.approx(367.722145)


def test_fronius_exporting_is_negative_grid():
    # The symo day sample turned into an export: PV 4000, house 1611, 2389 to the grid.
    values = parse_power_flow(flow(SYMO_DAY, P_Grid=-2389.0, P_PV=4000, P_Load=-1611.0))
    assert (values["grid_w"], values["solar_w"], values["load_w"]) == (-2389.0, 4000.0, 1611.0)


def test_fronius_gen24_load_is_minus_p_load_not_the_sum_of_dc_pv_and_grid():
    values = parse_power_flow(load_fixture(GEN24_BATTERY))
    assert values["load_w"] == pytest.approx(2459.3092254638673)
    flows = values["grid_w"] + values["solar_w"] + values["battery_w"]
    assert flows == pytest.approx(2491.49, abs=0.01) and abs(flows - values["load_w"]) > 30


def test_fronius_battery_signs_and_soc():
    values = parse_power_flow(load_fixture(GEN24_BATTERY))
    assert values["battery_w"] == pytest.approx(0.159, abs=0.001)
    assert values["battery_soc_percent"] == pytest.approx(4.6)
    charging = parse_power_flow(flow(GEN24_BATTERY, P_Akku=-2000.0, P_PV=5000.0, P_Grid=-500.0, P_Load=-2500.0))
    assert charging["battery_w"] == -2000.0 and charging["grid_w"] == -500.0
    discharging = parse_power_flow(flow(GEN24_BATTERY, P_Akku=1500.0, P_PV=None, P_Grid=100.0, P_Load=-1600.0))
    assert discharging["battery_w"] == 1500.0 and discharging["solar_w"] is None and discharging["load_w"] == 1600.0


def test_fronius_gen24_without_battery_has_no_soc_despite_its_false_zero():
    values = parse_power_flow(load_fixture(GEN24))
    assert values["battery_w"] is None and values["battery_soc_percent"] is None
    assert values["load_w"] == pytest.approx(695.68274917602537)


def test_fronius_without_a_meter_has_no_grid_and_no_load():
    values = parse_power_flow(load_fixture("ha_igplus_v2_GetPowerFlowRealtimeData_no_meter.json"))
    assert values == {"grid_w": None, "solar_w": 2241.0, "battery_w": None, "battery_soc_percent": None,
                      "load_w": None}


def test_fronius_two_inverters_load_meter():
    values = parse_power_flow(load_fixture("ha_primo_s0_GetPowerFlowRealtimeData_two_inverters_load_meter.json"))
    assert values["solar_w"] == 1834.0 and values["load_w"] == pytest.approx(2218.93, abs=0.01)


@pytest.mark.parametrize(("mutate", "error", "message"), [
    (lambda b: b["Head"]["Status"].update(Code=8, Reason="LNRequestTimeout"), MeterUnavailableError, "status 8"),
    (lambda b: b["Body"]["Data"]["Site"].pop("P_Grid"), MeterDataError, "Site.P_Grid is missing"),
    (lambda b: b["Body"]["Data"]["Site"].update(P_Grid="1703"), MeterDataError, "Site.P_Grid is not a number"),
    (lambda b: b["Body"]["Data"]["Site"].update(P_Load=True), MeterDataError, "Site.P_Load is not a number"),
    (lambda b: b["Body"]["Data"]["Site"].update(P_Grid=5e9), MeterDataError, "out of range"),
    (lambda b: b["Body"]["Data"].pop("Site"), MeterDataError, "Site is missing"),
])
def test_fronius_bad_payloads_are_rejected_naming_the_field(mutate, error, message):
    body = copy.deepcopy(load_fixture(SYMO_DAY))
    mutate(body)
    with pytest.raises(error, match=message):
        parse_power_flow(body)


def test_fronius_counters_only_from_a_grid_located_meter():
    assert parse_meter_counters(load_fixture("ha_symo_GetMeterRealtimeData_System.json")) == (15303334.0, 35623065.0)
    assert parse_meter_counters(load_fixture("pyfronius_GetMeterRealtimeData_System_load_meter.json")) is None


def test_fronius_source_reads_counters_twice_at_start_then_once_a_minute(fronius):
    with freeze_time("2026-11-23T01:00:00Z") as frozen:
        source = FroniusSource(fronius.url, 10)
        reads = []
        for _ in range(10):
            reads.append(source.fetch().import_wh)
            frozen.tick(timedelta(seconds=10))
    assert reads == [15303334.0, 15303334.0, None, None, None, None, None, 15303334.0, None, None]
    assert source.has_counters and sum("GetMeterRealtimeData" in r for r in fronius.requests) == 3
    assert source.fetch().grid_w == 1703.74


@pytest.mark.parametrize(("fault", "error", "message"), [
    ("timeout", MeterUnavailableError, "did not answer GetPowerFlowRealtimeData.fcgi within"),
    ("html", MeterDataError, "answered HTML"),
    ("404", MeterConfigError, "answered 404"),
    ("500", MeterUnavailableError, "HTTP 500"),
    ("429", MeterUnavailableError, "429"),
    ("garbage", MeterDataError, "not JSON"),
])
def test_fronius_faults_are_one_line_errors(fronius, fault, error, message):
    fronius.fault = fault
    with pytest.raises(error, match=message) as caught:
        FroniusSource(fronius.url, 10).fetch()
    assert "\n" not in str(caught.value)


def test_unreachable_meter_is_unavailable():
    with pytest.raises(MeterUnavailableError, match="cannot reach the Fronius inverter at http://127.0.0.1:9: conn"):
        FroniusSource("http://127.0.0.1:9", 10).fetch()


def test_shelly_samples_keep_signs_and_counters():
    dump = load_fixture("ha_pro_3em_fw1.6.1_device_dump.json")
    assert parse_em_status(dump["status"]["em:0"]) == 2413.825
    assert parse_emdata_status(dump["status"]["emdata:0"]) == (5415414.19, 0.0)
    older = load_fixture("aioshelly_pro3em_fw1.1.0_device_dump.json")
    assert parse_emdata_status(older["status"]["emdata:0"]) == (2589773.39, 1026.61)
    assert parse_em1data_status(load_fixture("evcc_EM1Data.GetStatus.json"), 0) == (1264.15, 144792.28)


def test_shelly_export_is_negative_and_null_power_stays_null():
    status = copy.deepcopy(load_fixture("ha_pro_3em_fw1.6.1_device_dump.json")["status"]["em:0"])
    status["total_act_power"] = -951.1
    assert parse_em_status(status) == -951.1
    status["total_act_power"] = None
    assert parse_em_status(status) is None
    assert parse_em1_status({"id": 0, "act_power": -620.34}, 0) == -620.34


@pytest.mark.parametrize(("errors", "rejected"), [
    (["power_meter_failure"], True), (["ct_type_not_set"], True), (["phase_sequence"], False),
])
def test_shelly_errors_that_break_the_measurement_reject_the_reading(errors, rejected):
    status = dict(load_fixture("ha_pro_3em_fw1.6.1_device_dump.json")["status"]["em:0"], errors=errors)
    if rejected:
        with pytest.raises(MeterDataError, match=errors[0]):
            parse_em_status(status)
    else:
        assert parse_em_status(status) == 2413.825


def test_shelly_reading_measures_the_grid_only(shelly):
    reading = ShellySource(shelly.url, 10).fetch()
    assert (reading.grid_w, reading.import_wh, reading.export_wh) == (2413.825, 5415414.19, 0.0)
    assert (reading.solar_w, reading.battery_w, reading.load_w, reading.battery_soc_percent) == (None,) * 4


def test_shelly_digest_auth_reuses_the_nonce():
    with FakeShelly(password="correct horse") as fake:
        source = ShellySource(fake.url, 10, Secret("correct horse"))
        readings = [source.fetch() for _ in range(5)]
        assert all(r.grid_w == 2413.825 for r in readings)
        assert fake.authorised == 10 and fake.challenges == 1


def test_shelly_wrong_or_missing_password_is_a_configuration_error():
    with FakeShelly(password="correct horse") as fake:
        with pytest.raises(MeterConfigError, match="METER_PASSWORD") as caught:
            ShellySource(fake.url, 10, Secret("wrong")).fetch()
        assert "wrong" not in str(caught.value)
        with pytest.raises(MeterConfigError, match="asks for a password: set METER_PASSWORD"):
            ShellySource(fake.url, 10, None).fetch()


def test_shelly_gen1_is_refused_clearly(shelly):
    shelly.info["gen"] = 1
    with pytest.raises(MeterConfigError, match="Gen1"):
        ShellySource(shelly.url, 10).fetch()


def test_shelly_timeout_and_html_are_failures(shelly):
    source = ShellySource(shelly.url, 10)
    source.fetch()
    shelly.fault = "timeout"
    with pytest.raises(MeterUnavailableError):
        source.fetch()
    shelly.fault = "html"
    with pytest.raises(MeterDataError, match="HTML"):
        source.fetch()


def test_shelly_monophase_3em_sums_its_three_em1_phases(shelly):
    shelly.use_em1("monophase", {0: (1200.0, 100.0, 5.0), 1: (-300.5, 50.0, 20.0), 2: (0.0, 1.0, 0.0)})
    reading = ShellySource(shelly.url, 10).fetch()
    assert (reading.grid_w, reading.import_wh, reading.export_wh) == (899.5, 151.0, 25.0)
    assert not any("/rpc/EM.GetStatus" in r for r in shelly.requests)


def test_shelly_pro_em_reads_channel_0_after_em_is_not_found(shelly):
    shelly.use_em1(None, {0: (-620.34, 1264.15, 144792.28), 1: (1500.0, 9.0, 9.0)})
    source = ShellySource(shelly.url, 10)
    reading = source.fetch()
    assert (reading.grid_w, reading.import_wh, reading.export_wh) == (-620.34, 1264.15, 144792.28)
    source.fetch()
    assert sum("/rpc/EM.GetStatus" in r for r in shelly.requests) == 1  # probed once, remembered
