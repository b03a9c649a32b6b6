"""Keeps cookies and proxy credentials out of logs, errors and the ledger.

yt-dlp prints its proxy map (with ``user:password@``) in verbose mode, passes
cookies to ffmpeg on its command line, and error messages can quote either.
Every text the downloader emits goes through a :class:`Scrubber` first.

Two layers: the known secrets (the proxy's user and password, the cookie
values of the cookies file) are replaced wherever they appear, in plain and
percent-encoded form; and anything shaped like a credential is masked even if
it was not registered: ``scheme://user:password@`` in URLs, ``Cookie:`` headers
and ffmpeg's ``-cookies`` argument.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from typing import Iterable, Optional

MASK = "***"

# Cookie values this short are not secrets (flags like "1" or "YES"), and masking
# them would garble every message containing those characters.
_MIN_SECRET_LENGTH = 6

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@:'\"]+(?::[^/\s@'\"]*)?@")
_COOKIE_HEADER = re.compile(r"(?im)^(?P<name>\s*(?:set-)?cookie\s*:)[^\r\n]*")
_COOKIE_ARGUMENT = re.compile(r"(?P<name>-cookies\s+)(?:'[^']*'|\"[^\"]*\"|\S+)")


class Scrubber:
  """Masks secrets in text.

  Args:
    secrets: strings that must never appear (passwords, cookie values).
  """

  def __init__(self, secrets: Iterable[str] = ()):
    forms = set()
    for secret in secrets:
      if not secret or len(secret) < _MIN_SECRET_LENGTH:
        continue
      forms.add(secret)
      forms.add(urllib.parse.quote(secret, safe=""))
      forms.add(urllib.parse.quote_plus(secret))
    # Longest first, so a secret containing another is masked whole.
    self._secrets = sorted(forms, key=len, reverse=True)

  @classmethod
  def for_credentials(cls, proxy: Optional[str] = None, cookies_file: Optional[str] = None) -> "Scrubber":
    """A scrubber for a proxy URL's credentials and a Netscape cookies file's values."""
    secrets = list(proxy_secrets(proxy)) if proxy else []
    if cookies_file:
      secrets.extend(cookie_file_secrets(cookies_file))
    return cls(secrets)

  def __call__(self, text: object) -> str:
    """The text with every secret and credential-shaped span masked."""
    text = str(text)
    for secret in self._secrets:
      if secret in text:
        text = text.replace(secret, MASK)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _COOKIE_HEADER.sub(lambda m: f"{m.group('name')} {MASK}", text)
    text = _COOKIE_ARGUMENT.sub(lambda m: f"{m.group('name')}{MASK}", text)
    return text


def proxy_secrets(proxy: str) -> list[str]:
  """The user name and password of a proxy URL like ``http://user:pass@host:port``."""
  if "://" not in proxy:
    proxy = "http://" + proxy
  parts = urllib.parse.urlsplit(proxy)
  secrets = []
  for value in (parts.username, parts.password):
    if value:
      secrets.extend({value, urllib.parse.unquote(value)})
  return secrets


def cookie_file_secrets(path: str) -> list[str]:
  """The cookie values in a Netscape-format cookies file (the 7th tab-separated field)."""
  secrets = []
  try:
    with open(path, encoding="utf-8", errors="replace") as cookies:
      for line in cookies:
        line = line.rstrip("\r\n")
        if line.startswith("#HttpOnly_"):
          line = line[len("#HttpOnly_"):]
        elif not line or line.startswith("#"):
          continue
        fields = line.split("\t")
        if len(fields) >= 7:
          secrets.append(fields[6])
  except OSError:
    # An unreadable cookies file makes yt-dlp fail with its own error; nothing to scrub.
    pass
  return secrets


class ScrubbingLogger:
  """The object yt-dlp's ``logger`` parameter takes, forwarding scrubbed text to a logging.Logger.

  yt-dlp reports progress, warnings and the errors it is about to raise through
  it. The downloader classifies and reports failures itself, so by default
  everything goes to DEBUG: quiet unless asked for.

  Args:
    logger: where messages go.
    scrubber: masks secrets first.
    warning_level: the level yt-dlp's warnings and errors are logged at.
  """

  def __init__(self, logger: logging.Logger, scrubber: Scrubber, warning_level: int = logging.DEBUG):
    self._logger = logger
    self._scrub = scrubber
    self._warning_level = warning_level

  def debug(self, message: str) -> None:
    if self._logger.isEnabledFor(logging.DEBUG):
      self._logger.debug("%s", self._scrub(message))

  def info(self, message: str) -> None:
    self.debug(message)

  def warning(self, message: str, *args, **kwargs) -> None:
    del args, kwargs  # yt-dlp passes only_once= to some loggers
    if self._logger.isEnabledFor(self._warning_level):
      self._logger.log(self._warning_level, "%s", self._scrub(message))

  def error(self, message: str, *args, **kwargs) -> None:
    self.warning(message, *args, **kwargs)
