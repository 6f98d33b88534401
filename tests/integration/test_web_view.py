"""`rdt view` in a real browser: headless Chromium (Debian's chromium + chromium-driver) loads
the page served for the running twin graph, the robot is drawn where the view points its
camera, and the page's Disarm and Arm (with its confirmation) reach the bridge.

Slow (make test-slow, CI): starting a browser and a graph with cameras takes a minute. Without a
Chromium the tests are skipped with the command that installs it, listed at the end of the run
(pytest.ini: -ra).
"""
from __future__ import annotations

import colorsys
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reverse_digital_twin.client import wait_for
from reverse_digital_twin.view.scene import GHOST_COLOR, ROBOT_COLOR

from .conftest import Twin

# The whole module is slow: a browser and a graph with cameras take a minute to start on a
# two-core machine (make test-slow and CI run it; the page's scene is unit-tested in
# tests/unit/test_web_view_scene.py).
pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
INSTALL = 'sudo apt-get install -y chromium chromium-driver'
WINDOW = (800, 560)  # fewer pixels for software WebGL, the layout unchanged
#: s: a software-rendered page on a busy 2-core machine
PAGE_TIMEOUT = 120.0


def chromium() -> tuple[str, str] | str:
    """(browser, driver) paths, or why the browser tests cannot run."""
    browser = shutil.which('chromium') or shutil.which('chromium-browser')
    driver = shutil.which('chromedriver') or \
        ('/usr/bin/chromedriver' if Path('/usr/bin/chromedriver').is_file() else None)
    if browser is None or driver is None:
        missing = ', '.join(n for n, p in (('chromium', browser), ('chromedriver', driver))
                            if p is None)
        return f'no headless Chromium here ({missing} missing); install it with: {INSTALL}'
    try:
        import selenium  # noqa: F401, PLC0415
    except ImportError:
        return 'selenium is not installed: pip install -r tools/requirements.txt'
    return browser, driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class ViewProcess:
    """`rdt view` as the user starts it, in its own process; its output kept for reports."""

    def __init__(self, port: int, log: Path) -> None:
        self.log = log.open('w')
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            [sys.executable, '-u', '-m', 'reverse_digital_twin.cli', 'view', '--port', str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line)
            self.log.write(line)
            self.log.flush()

    def url(self, timeout: float = 120.0) -> str:
        """The URL `rdt view` prints once it serves the page."""
        def printed() -> bool:
            return any('serving http' in line for line in self.lines) \
                or self.popen.poll() is not None
        assert wait_for(printed, timeout), f'rdt view printed no URL in {timeout:g} s'
        if self.popen.poll() is not None:
            raise AssertionError(f'rdt view exited {self.popen.returncode}:\n'
                                 + ''.join(self.lines[-20:]))
        line = next(line for line in self.lines if 'serving http' in line)
        return line.split('serving ', 1)[1].split()[0]

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._reader.join(5)
        self.log.close()
        return self.popen.returncode


@pytest.fixture(scope='module')
def chrome_paths() -> tuple[str, str]:
    found = chromium()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope='module')
def armed_twin(chrome_paths, ros_node, tmp_path_factory) -> Iterator[Twin]:
    """The twin graph with the stand-in hardware, armed (what the page then disarms)."""
    twin = Twin(ros_node, 'rdt_arm6', tmp_path_factory.mktemp('web_view'))
    try:
        assert twin.commander.arm(True, check=True).success
        assert twin.commander.wait_status(lambda s: s.hardware_armed, 10.0)
        yield twin
    finally:
        twin.close()


@pytest.fixture(scope='module')
def view(armed_twin, tmp_path_factory) -> Iterator[str]:
    process = ViewProcess(free_port(), tmp_path_factory.mktemp('view') / 'rdt_view.log')
    try:
        yield process.url()
    finally:
        code = process.stop()
    assert code == 0, f'rdt view exited {code}:\n' + ''.join(process.lines[-20:])


@pytest.fixture(scope='module')
def browser(chrome_paths, view):
    os.environ.setdefault('SE_AVOID_STATS', 'true')  # selenium: no usage statistics
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    options = webdriver.ChromeOptions()
    options.binary_location = chrome_paths[0]
    # software WebGL (no GPU here); and a headless page is a "background" one to Chromium,
    # whose renderer it would run at a lower priority and throttle: not what a test wants
    for argument in ('--headless', '--no-sandbox', '--use-angle=swiftshader',
                     '--enable-unsafe-swiftshader', f'--window-size={WINDOW[0]},{WINDOW[1]}',
                     '--force-device-scale-factor=1', '--disable-renderer-backgrounding',
                     '--disable-background-timer-throttling',
                     '--disable-backgrounding-occluded-windows'):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(chrome_paths[1]), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    driver.set_script_timeout(PAGE_TIMEOUT)
    try:
        # the page is loaded once for the module, whichever of its tests runs first (make test
        # and make test-slow each run some of them)
        started = time.monotonic()
        driver.get(view)
        normal_priority(driver)  # the page's renderer exists now
        LOAD_TIMES['loaded'] = time.monotonic() - started
        assert wait_text(driver, 'Hardware:'), 'the page never showed the bridge\'s status'
        yield driver
    finally:
        driver.quit()
        if SCREENSHOT_TIMES:
            times = np.array(SCREENSHOT_TIMES)
            print(f'\n{len(times)} screenshots: median {np.median(times):.1f} s, '
                  f'max {times.max():.1f} s')


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / 'stat').read_text().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def normal_priority(driver) -> None:
    """Chromium runs a headless page's renderer as a background one, at niceness 5; on two
    cores busy with the graph's processes it then hardly runs, and a screenshot waits minutes.
    Give every thread of the browser the normal priority (needs root, as in CI; else it stays
    as it is, only slower)."""
    for pid in descendants(driver.service.process.pid):
        try:
            threads = [int(t.name) for t in Path(f'/proc/{pid}/task').iterdir()]
        except OSError:
            continue
        for tid in threads:
            try:
                if os.getpriority(os.PRIO_PROCESS, tid) > 0:
                    os.setpriority(os.PRIO_PROCESS, tid, 0)
            except OSError:  # gone, or not permitted
                pass


# --- reading the page ----------------------------------------------------------------------------

def page_text(driver) -> str:
    """The page's visible text ('' while the renderer is too busy to answer)."""
    from selenium.common.exceptions import TimeoutException  # noqa: PLC0415
    try:
        return driver.execute_script('return document.body.innerText')
    except TimeoutException:
        return ''


def wait_text(driver, text: str, timeout: float = PAGE_TIMEOUT) -> bool:
    return wait_for(lambda: text in page_text(driver), timeout, poll=0.2)


def shown(driver, by: str, selector: str) -> list:
    """The elements on screen (the page keeps hidden copies of its controls for other
    layouts)."""
    return [e for e in driver.find_elements(by, selector) if e.is_displayed()]


def button(driver, label: str):
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    found = shown(driver, By.XPATH, f"//button[normalize-space()='{label}']")
    assert found, f'no button {label!r} on the page'
    return found[0]


#: s each screenshot took (reported at the end of the module)
SCREENSHOT_TIMES: list[float] = []
#: s the page took to load (the browser fixture loads it)
LOAD_TIMES: dict[str, float] = {}


def screenshot_png(driver, timeout: float = PAGE_TIMEOUT) -> bytes:
    """A screenshot, asked again while the renderer is too busy to answer (chromedriver gives
    it 10 s: a software-rendered page on a loaded 2-core machine may need longer)."""
    from selenium.common.exceptions import TimeoutException  # noqa: PLC0415
    started = time.monotonic()
    deadline = started + timeout
    while True:
        try:
            png = driver.get_screenshot_as_png()
            SCREENSHOT_TIMES.append(time.monotonic() - started)
            return png
        except TimeoutException:
            if time.monotonic() > deadline:
                raise


def decode_png(png: bytes) -> np.ndarray:
    """A screenshot as an (H, W, 3) uint8 array."""
    import matplotlib.image  # noqa: PLC0415
    image = matplotlib.image.imread(io.BytesIO(png), format='png')
    return np.round(image[:, :, :3] * 255).astype(np.uint8)


def colour_mask(image: np.ndarray, rgb: tuple[int, int, int], hue_tolerance: float = 15.0,
                min_saturation: float = 0.5) -> np.ndarray:
    """Pixels of a colour, lit or shaded: its hue and at least ``min_saturation`` of its
    saturation (the page's neutral parts - background, grid, text - have none)."""
    hue, saturation, _ = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    pixels = image.astype(float) / 255
    high, low = pixels.max(axis=2), pixels.min(axis=2)
    chroma = high - low
    safe = np.where(chroma > 0, chroma, 1)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    h = np.where(high == r, ((g - b) / safe) % 6,
                 np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    s = chroma / np.where(high > 0, high, 1)
    distance = np.minimum(np.abs(h - hue), 1 - np.abs(h - hue))
    return (chroma > 0) & (distance < hue_tolerance / 360) & \
        (s > min_saturation * saturation) & (high > 0.2)


def robot_mask(image: np.ndarray) -> np.ndarray:
    """The measured robot's pixels (the page draws it in ROBOT_COLOR alone)."""
    return colour_mask(image, ROBOT_COLOR)


def canvas_box(driver) -> tuple[int, int, int, int]:
    """(left, top, width, height) of the 3D view's canvas in the screenshot."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    rect = max((c.rect for c in shown(driver, By.TAG_NAME, 'canvas')),
               key=lambda r: r['width'] * r['height'])
    return (int(rect['x']), int(rect['y']), int(rect['width']), int(rect['height']))


def scene_pixels(driver) -> tuple[bytes, np.ndarray]:
    """A screenshot (PNG) and the 3D view's part of it. The controls are docked beside the
    view, not over it (checked in the first test), so the view holds only the scene."""
    left, top, width, height = canvas_box(driver)
    png = screenshot_png(driver)
    return png, decode_png(png)[top:top + height, left:left + width]


def set_checkbox(driver, label: str, checked: bool) -> None:
    """Tick or clear one of the page's checkboxes, found by its label."""
    box = driver.execute_script(
        "let e = [...document.querySelectorAll('*')].find(x => x.childElementCount === 0"
        "  && x.textContent.trim() === arguments[0]);"
        "while (e && !e.querySelector('input[type=checkbox]')) e = e.parentElement;"
        "return e ? e.querySelector('input[type=checkbox]') : null;", label)
    assert box is not None, f'no checkbox {label!r} on the page'
    if box.is_selected() != checked:
        driver.execute_script('arguments[0].click()', box)
    assert wait_for(lambda: box.is_selected() == checked, 15.0), f'{label} not {checked}'


def dismiss_notifications(driver) -> None:
    """Close viser's "software WebGL" notice (true here, and not what the page is about)."""
    driver.execute_script("document.querySelectorAll('.mantine-Notification-closeButton')"
                          ".forEach(b => b.click())")


# --- tests ---------------------------------------------------------------------------------------

def executables(twin: Twin) -> set[str]:
    return {node.executable for spec in twin.specs for node in spec.nodes}


def test_the_page_draws_the_robot_where_it_looks(browser, view, armed_twin):
    started = time.monotonic()
    loaded = LOAD_TIMES['loaded']
    # the bridge's latched status reaches the page: armed, target sim
    assert wait_text(browser, 'Hardware: ARMED'), page_text(browser)[:500]
    assert 'Target: sim' in page_text(browser)
    status_after = time.monotonic() - started
    dismiss_notifications(browser)
    left, top, width, height = canvas_box(browser)
    assert width >= WINDOW[0] * 0.4 and height >= WINDOW[1] * 0.6, (width, height)
    controls = button(browser, 'Switch target').rect
    assert controls['x'] >= left + width - 1, 'the controls cover the 3D view'
    found: dict[str, Any] = {}

    def drawn() -> bool:
        found['png'], image = scene_pixels(browser)
        found['mask'] = robot_mask(image)
        return found['mask'].sum() > 0.005 * width * height
    shot = time.monotonic()
    assert wait_for(drawn, PAGE_TIMEOUT, poll=0.5), \
        f'no robot-coloured pixels after {PAGE_TIMEOUT:g} s ({int(found["mask"].sum())} found)'
    drawn_after = time.monotonic() - shot
    mask = found['mask']
    # The view points its camera at the centre of the robot's bounding box, from a distance at
    # which the bounding sphere spans at most 0.82 of the half-height (view.page.VIEW_MARGIN,
    # VIEW_FOV): the robot's pixels gather around the middle of the view, and its corners
    # (farther out than that from the middle) show none. The page draws nothing else in the
    # robot's colour: grid and background are grey, the ghost blue, markers red or green, the
    # camera's cloud has the colours of the camera's image.
    ys, xs = np.nonzero(mask)
    centre = np.array([xs.mean() / width, ys.mean() / height])
    assert np.all(np.abs(centre - 0.5) < 0.2), f'robot centred at {centre} of the view'
    middle = mask[height // 4:3 * height // 4, width // 4:3 * width // 4]
    assert middle.sum() > 0.5 * mask.sum(), 'most of the robot lies outside the middle'
    h, w = height // 6, width // 6
    corners = [mask[:h, :w], mask[:h, -w:], mask[-h:, :w], mask[-h:, -w:]]
    assert all(c.sum() == 0 for c in corners), [int(c.sum()) for c in corners]
    save(found['png'], 'web_view_robot.png')
    print(f'\npage loaded in {loaded:.1f} s, status shown {status_after:.1f} s later, robot '
          f'drawn {drawn_after:.1f} s after that; '
          f'{int(mask.sum())} robot pixels centred at {centre.round(3)}')


def test_the_camera_is_shown(browser, view, armed_twin):
    if 'camera' not in executables(armed_twin):
        pytest.skip('the graph has no camera node (the scene declares no camera)')
    # the hardware's camera is preferred; its first image replaces "waiting for images" (the
    # cameras are niced below the physics: on a slow 2-core machine the first took over 30 s)
    assert wait_text(browser, '/hw/', 90.0), page_text(browser)[-500:]
    assert wait_for(lambda: 'waiting for images' not in page_text(browser), 30.0)
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    images = [i for i in browser.find_elements(By.TAG_NAME, 'img')
              if i.is_displayed() and i.size['width'] > 50]
    assert images, 'no camera image on the page'


def test_a_refused_goal_is_drawn_on_the_page(browser, view, armed_twin):
    """The twin's prediction of a refused goal: the verdict panel says why, the ghost leaves
    the arm for where the twin predicts it would go, and the predicted path and contact are
    drawn red. Two screenshot waits in all (each takes seconds in software WebGL)."""
    if 'prediction_view' not in executables(armed_twin):
        pytest.skip('the graph has no prediction view node')
    from reverse_digital_twin.core.prediction_drawing import UNSAFE_COLOUR  # noqa: PLC0415
    unsafe_rgb = tuple(int(round(c * 255)) for c in UNSAFE_COLOUR[:3])
    # the camera's cloud shows the red pillar, and the measured robot hides the ghost standing
    # inside it: both hidden, the ghost and the drawing are all that is coloured
    labels = ('Show the point cloud', 'Show the measured robot')
    for label in labels:
        set_checkbox(browser, label, False)
    try:
        _, before = scene_pixels(browser)
        red_before = int(colour_mask(before, unsafe_rgb).sum())
        ghost_before = colour_mask(before, GHOST_COLOR, min_saturation=0.3)
        assert ghost_before.sum() > 200, 'no ghost drawn at the arm before the goal'
        unsafe = armed_twin.home.copy()
        unsafe[0] = 1.57  # sweeps the arm through the pillar of the default scene
        outcome = armed_twin.send([unsafe], [2.0])
        assert outcome.status_name == 'ABORTED' and 'refused' in outcome.error_string
        assert wait_text(browser, 'Verdict: UNSAFE', 30.0), page_text(browser)[-800:]
        assert 'obstacle' in page_text(browser)
        found: dict[str, Any] = {}

        def drawn() -> bool:
            _, image = scene_pixels(browser)
            ghost = colour_mask(image, GHOST_COLOR, min_saturation=0.3)
            found['moved'] = int((ghost & ~ghost_before).sum())
            found['red'] = int(colour_mask(image, unsafe_rgb).sum())
            return found['moved'] > 200 and found['red'] > red_before + 20  # a thin line
        assert wait_for(drawn, PAGE_TIMEOUT, poll=0.5), \
            f'ghost pixels off the arm {found.get("moved")}, red {red_before} -> ' \
            f'{found.get("red")}'
    finally:
        for label in labels:
            set_checkbox(browser, label, True)
    print(f'\nred pixels {red_before} -> {found["red"]}, ghost pixels away from the arm '
          f'{found["moved"]}')


def test_disarm_and_arm_from_the_page_reach_the_bridge(browser, view, armed_twin):
    commander = armed_twin.commander
    assert wait_text(browser, 'Hardware: ARMED', 15.0)
    button(browser, 'Disarm hardware').click()
    assert commander.wait_status(lambda s: not s.hardware_armed, 15.0), \
        'the bridge still reports the hardware armed'
    assert wait_text(browser, 'Hardware: disarmed', 15.0), page_text(browser)[:500]
    assert 'disarm failed' not in page_text(browser)
    # Arm asks first: cancelling leaves it disarmed, confirming arms
    button(browser, 'Arm hardware').click()
    assert wait_text(browser, 'Arm the hardware?', 15.0)
    button(browser, 'Cancel').click()
    assert wait_for(lambda: 'Arm the hardware?' not in page_text(browser), 15.0)
    status = commander.status()
    assert status is not None and not status.hardware_armed
    button(browser, 'Arm hardware').click()
    assert wait_text(browser, 'Confirm arm', 15.0)
    button(browser, 'Confirm arm').click()
    assert commander.wait_status(lambda s: s.hardware_armed, 15.0), 'not armed after confirming'
    assert wait_text(browser, 'Hardware: ARMED', 15.0)


def test_switching_from_the_page_and_a_refusal_shown(browser, view, armed_twin):
    """Armed, the page switches the bridge to shadow and back; disarmed, the bridge refuses
    target hardware and the page says why."""
    commander = armed_twin.commander
    try:
        commander.arm(True, check=True)
        choose_target(browser, 'shadow')
        button(browser, 'Switch target').click()
        assert commander.wait_status(lambda s: s.active_target == 'shadow', 15.0)
        assert wait_text(browser, 'Target: shadow', 15.0)
        choose_target(browser, 'sim')
        button(browser, 'Switch target').click()
        assert commander.wait_status(lambda s: s.active_target == 'sim', 15.0)
        commander.disarm(check=True)
        assert wait_text(browser, 'Hardware: disarmed', 15.0)
        choose_target(browser, 'hardware')
        button(browser, 'Switch target').click()
        assert wait_text(browser, 'refused', 15.0), page_text(browser)[-500:]
        assert 'not armed' in page_text(browser)
        assert commander.status().active_target == 'sim'
    finally:
        commander.switch('sim')
        commander.disarm()


def choose_target(driver, target: str) -> None:
    """Pick an option of the page's Target dropdown (a Mantine select)."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    field = shown(driver, By.CSS_SELECTOR, 'input.mantine-Select-input')[0]
    field.click()
    option = f"//*[@role='option' and normalize-space()='{target}']"
    assert wait_for(lambda: shown(driver, By.XPATH, option), 15.0), \
        f'no option {target} in the Target dropdown'
    shown(driver, By.XPATH, option)[0].click()
    assert wait_for(lambda: field.get_attribute('value') == target, 15.0)


def save(png: bytes, name: str) -> Path:
    """A screenshot into artifacts/ (the README's picture is copied from there)."""
    artifacts = ROOT / 'artifacts'
    artifacts.mkdir(exist_ok=True)
    (artifacts / name).write_bytes(png)
    return artifacts / name
