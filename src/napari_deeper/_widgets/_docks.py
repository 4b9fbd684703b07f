"""The plugin's docks share one tabbed area, so that the window fits a 1080p screen.

napari stacks every new dock under the others; with the plugin's nine docks open the window
grew past 3000 px and each dock's parameters shrank to a 50 px strip. Every dock calls
:func:`arrange_soon` as it is made; once napari has docked it (and from then on whenever a dock
is added to the window), each napari-deeper dock becomes a tab beside the plugin's other docks in
its dock area, and its content scrolls as a whole instead of being squeezed. The Spectra plot
keeps a dock of its own (stacked with the tabs), so it stays in view while another dock is used;
floating docks are left alone. Should the window have grown taller than the screen meanwhile,
it is brought back within it.
"""

from __future__ import annotations

import weakref
from contextlib import ExitStack

PLUGIN = "napari-deeper"
SPECTRA = f"Spectra ({PLUGIN})"
SCROLLED = "napari_deeper_scrolled"  # object name of the scroll area put around a dock's content
WATCHER = "napari_deeper_dock_watcher"


def arrange_soon(widget) -> None:
    """Arrange the plugin's docks once ``widget`` (part of a new dock) is in napari's window.

    Every dock calls this while it is being made; napari puts it in a dock of the main window
    right after, so the arrangement runs at the next turn of the event loop. A widget that is
    not docked by then (one made on its own, as in a script) arranges nothing.
    """
    from qtpy.QtCore import QTimer

    reference = weakref.ref(widget)

    def arrange() -> None:
        target = reference()
        try:
            main = _main_window_of(target) if target is not None else None
        except RuntimeError:  # Qt deleted the widget meanwhile
            return
        _arrange(main)

    QTimer.singleShot(0, arrange)


def _watch(main) -> None:
    """Arrange again whenever a dock is added to ``main`` later (once per window)."""
    from qtpy.QtCore import QEvent, QObject, QTimer
    from qtpy.QtWidgets import QDockWidget

    if main.findChild(QObject, WATCHER) is not None:
        return
    reference = weakref.ref(main)

    class DockWatcher(QObject):
        def eventFilter(self, watched, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.ChildAdded and isinstance(event.child(), QDockWidget):
                QTimer.singleShot(0, lambda: _arrange(reference()))
            return False

    watcher = DockWatcher(main)
    watcher.setObjectName(WATCHER)
    main.installEventFilter(watcher)


def _main_window_of(widget):
    from qtpy.QtWidgets import QMainWindow

    window = widget.window()
    return window if isinstance(window, QMainWindow) else None


def is_ours(dock) -> bool:
    return dock.objectName().endswith(f"({PLUGIN})")


def _arrange(main) -> None:
    """Tab every napari-deeper dock (but Spectra) with the first one in its area; fit the screen."""
    if main is None:
        return
    try:
        _tab_docks(main)
    except RuntimeError as error:  # the window or a dock was deleted by Qt meanwhile
        if "deleted" not in str(error):
            raise


def _tab_docks(main) -> None:
    from qtpy.QtWidgets import QDockWidget

    _watch(main)
    docks = [dock for dock in main.findChildren(QDockWidget) if is_ours(dock) and not dock.isFloating()]
    first_in_area: dict = {}
    for dock in docks:
        if dock.objectName() == SPECTRA:
            continue
        scrolled(dock.widget())
        area = main.dockWidgetArea(dock)
        anchor = first_in_area.setdefault(area, dock)
        if anchor is not dock and dock not in main.tabifiedDockWidgets(anchor):
            main.tabifyDockWidget(anchor, dock)
            dock.raise_()
    fit_screen(main)


def scrolled(widget) -> None:
    """Let ``widget``'s content scroll as a whole inside it (once), at no less than its size hint.

    The widget keeps its identity (napari's dock registry and callers hold it); its layout moves
    into a scroll area that becomes its only child, its controls keeping their state.
    """
    from qtpy.QtCore import QSize, Qt
    from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

    class VerticalScroll(QScrollArea):
        """Scrolls up and down only: as wide as its content needs (so is the dock), any height."""

        def minimumSizeHint(self):  # noqa: N802 - Qt's name
            inner = self.widget().minimumSizeHint().width() if self.widget() is not None else 0
            return QSize(inner + self.verticalScrollBar().sizeHint().width(), super().minimumSizeHint().height())

    if widget is None or widget.findChild(QScrollArea, SCROLLED) is not None or widget.layout() is None:
        return
    content = QWidget()
    with ExitStack() as quiet:
        # magicgui re-lists a choice widget's choices when its parent changes, which would drop
        # choices set after it was made (a dock's method list): moving is not a change of context
        for child in widget.findChildren(QWidget):
            signal = getattr(getattr(child, "_magic_widget", None), "native_parent_changed", None)
            if signal is not None:
                quiet.enter_context(signal.blocked())
        content.setLayout(widget.layout())  # Qt moves the layout and its widgets over
    content.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    area = VerticalScroll()
    area.setObjectName(SCROLLED)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(content)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)


def fit_screen(main) -> None:
    """Shrink the window back within its screen's available height (it only grows by itself)."""
    screen = main.screen() if hasattr(main, "screen") else None
    if screen is None or main.isMaximized() or main.isFullScreen():
        return
    available = screen.availableGeometry().height()
    frame = main.frameGeometry().height() - main.geometry().height()
    if main.height() + frame > available:
        main.resize(main.width(), max(main.minimumSizeHint().height(), available - frame))
