// Signal handlers that only set a flag, for "stop after the current step".
// (Not MPI, but C: a handler may only touch a volatile sig_atomic_t.)
#include "CMPIShim.h"
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t stop_signal = 0;
static volatile sig_atomic_t stop_at_once = 0;

static void record_stop(int signal_number) {
    if (stop_at_once || (stop_signal != 0 && (signal_number == SIGINT || signal_number == SIGTERM))) {
        // A second interrupt means "now", and so does any stop while there is nothing to
        // checkpoint yet (start-up): restore the default action and re-raise.
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
