"""The register: the tamper-evident, hash-chained record of who saw what and who did what.

:mod:`.app` is the service (consumes the ``audit`` topic, appends each entry once);
:mod:`.chain` the canonical content, the hashes and the verification; :mod:`.query` the
filtered listing used by ``vigie register show/export`` and the auditor's page.
"""
