from common import health_report, load_settings


def test_health_report_is_ok() -> None:
    report = health_report("svc", "1.0")
    assert report.status == "ok"
    assert report.as_dict()["service"] == "svc"


def test_settings_from_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PORT", "9123")
    assert load_settings("svc", 8000).port == 9123
