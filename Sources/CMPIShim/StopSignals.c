// Signal handlers that only set a flag, for "stop after the current step".
// (Not MPI, but C: a handler may only touch a volatile sig_atomic_t.)
#include "CMPIShim.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal = 0;
static volatile sig_atomic_t stop_at_once = 0;

// The note said when a stop ends start-up at once. Two slots: a new note is written into the
// slot not in use and then published by one sig_atomic_t store, so a handler never reads a
// half-written note (-1: none).
static char immediate_notes[2][512];
static volatile sig_atomic_t immediate_note_slot = -1;

void dpo_stop_signals_set_immediate_note(const char *note) {
    if (note == NULL) {
        immediate_note_slot = -1;
        return;
    }
    int slot = immediate_note_slot == 0 ? 1 : 0;
    strncpy(immediate_notes[slot], note, sizeof immediate_notes[slot] - 1);
    immediate_notes[slot][sizeof immediate_notes[slot] - 1] = '\0';
    immediate_note_slot = slot;
}

static const char *signal_name(int signal_number) {
    switch (signal_number) {
    case SIGINT: return "SIGINT (Ctrl-C)";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    case SIGUSR1: return "SIGUSR1 (launch/local.sh passes Ctrl-C and SIGTERM on as it)";
    case SIGUSR2: return "SIGUSR2";
    default: return "a signal";
    }
}

/// write(2) all of `text` to stderr (async-signal-safe; errors ignored: the process is ending).
static void write_stderr(const char *text) {
    size_t left = strlen(text);
    while (left > 0) {
        ssize_t written = write(STDERR_FILENO, text, left);
        if (written <= 0) return;
        text += written;
        left -= (size_t)written;
    }
}

static void record_stop(int signal_number) {
    if (stop_at_once || (stop_signal != 0 && (signal_number == SIGINT || signal_number == SIGTERM))) {
        // A second interrupt means "now", and so does any stop while there is nothing to
        // checkpoint yet (start-up): restore the default action and re-raise. At start-up the
        // shell's 130/143 alone would not say what was cut short: say it first.
        int slot = immediate_note_slot;
        if (stop_at_once && slot >= 0) {
            write_stderr("stopped by ");
            write_stderr(signal_name(signal_number));
            write_stderr(immediate_notes[slot]);
            write_stderr("\n");
        }
        struct sigaction fallback;
        memset(&fallback, 0, sizeof fallback);
        fallback.sa_handler = SIG_DFL;
        sigaction(signal_number, &fallback, NULL);
        raise(signal_number);
        return;
    }
    stop_signal = signal_number;
}

int dpo_stop_signals_install(void) {
    // A closed log pipe (`| head`, a `| tee` whose ssh session dropped) must end the progress
    // output, not the run: writes then fail with EPIPE, which the writers ignore.
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) return -1;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = record_stop;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    int signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if (sigaction(signals[i], &action, NULL) != 0) return -1;
    }
    return 0;
}

void dpo_stop_signals_uninstall(void) {
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    int signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) sigaction(signals[i], &fallback, NULL);
    signal(SIGPIPE, SIG_DFL);
}

int dpo_stop_signal_received(void) { return stop_signal; }

void dpo_stop_signal_reset(void) { stop_signal = 0; }

void dpo_stop_signals_set_immediate(int immediate) { stop_at_once = immediate ? 1 : 0; }
