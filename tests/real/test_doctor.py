"""`callcenter doctor` against the real Asterisk 22, set up as the README's install section says: all ✓."""

from __future__ import annotations

from dataclasses import replace

from callcenter.config import SftpSettings
from callcenter.doctor import report, run_doctor
from tests.install.sftp import PASSWORD, USER, sftp_server
from tests.real.asterisk import RealAsterisk
from tests.real.service import RunningService


async def test_doctor_passes_every_check_on_the_real_asterisk(asterisk: RealAsterisk,
                                                              service: RunningService) -> None:
    asterisk.recordings.mkdir(parents=True, exist_ok=True)
    async with sftp_server() as port:
        pbx = service.config.pbx[0]
        sftp = SftpSettings(host="127.0.0.1", port=port, username=USER, password=PASSWORD,
                            root=str(asterisk.recordings))
        checks = await run_doctor(replace(service.config, pbx=(replace(pbx, sftp=sftp),)))
    lines: list[str] = []
    assert report(checks, lines.append) == 0, "\n".join(lines)
    assert [c.name for c in checks] == ["config", "database", "ARI main", "ARI app main", "prompts main", "AMI main",
                                        "dialplan main", "FastAGI", "recordings main"]
    assert "Asterisk 22.10.1" in checks[2].detail
    assert "the address the loaded dialplan dials" in checks[7].detail
