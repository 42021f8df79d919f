from ${module} import hello


def test_hello() -> None:
    assert hello("world") == "hello, world"
