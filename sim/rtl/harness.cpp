// The generated accelerator in a plain Verilator loop, served to a host process over
// stdin/stdout (sim/harness.py): the fast path of whole-network runs, and the loop whose speed
// `make bench` quotes as the ceiling.
//
// Every input stream is always valid while it has beats and the output is always ready, so
// a layer run takes exactly the closed-form cycles. The host checks every output beat.
//
// Protocol, little-endian 32-bit words after a first line of JSON:
//   hello (harness -> host, one line): {"streams": {"config": words per beat, ...}, "out": n}
//   request: command (1 = run, 0 = quit), repeats, budget (cycles per repeat before it counts
//     as hung), drain (cycles to watch for extra outputs after the last), then for each input
//     stream in the hello's order: beats, then beats * words, then the output beats expected
//     per repeat.
//   reply: status (0 done, 1 hung, 2 an output beat too many, 3 inputs left over; the next
//     request then starts from a reset), cycles of
//     the first repeat from its config transfer to its last output transfer (both counted, as
//     a 64-bit pair), the simulated cycles of the whole request (64-bit), the loop's wall time
//     in nanoseconds (64-bit), the output beats received (repeats * expected at most) and
//     their words.
#include "Vtop.h"
#include "verilated.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

// Verilator escapes the "__" of Amaranth's flattened port names as "___05F".
#define PORT(stream, field) stream##___05F##field

namespace {

template <typename T>
constexpr uint32_t words_of(const T&) { return sizeof(T) > 4 ? 2 : 1; }
template <std::size_t N>
constexpr uint32_t words_of(const VlWide<N>&) { return N; }

template <typename T>
void put(T& port, const uint32_t* words) {
    uint64_t value = words[0];
    if (sizeof(T) > 4) value |= static_cast<uint64_t>(words[1]) << 32;
    port = static_cast<T>(value);
}
template <std::size_t N>
void put(VlWide<N>& port, const uint32_t* words) {
    for (std::size_t i = 0; i < N; ++i) port[i] = words[i];
}

template <typename T>
void get(const T& port, uint32_t* words) {
    const uint64_t value = port;
    words[0] = static_cast<uint32_t>(value);
    if (sizeof(T) > 4) words[1] = static_cast<uint32_t>(value >> 32);
}
template <std::size_t N>
void get(const VlWide<N>& port, uint32_t* words) {
    for (std::size_t i = 0; i < N; ++i) words[i] = port[i];
}

bool read_words(uint32_t* words, std::size_t count) {
    return std::fread(words, 4, count, stdin) == count;
}

uint32_t read_word() {
    uint32_t word = 0;
    if (!read_words(&word, 1)) std::exit(0);  // the host went away
    return word;
}

void write_words(const void* words, std::size_t count) {
    std::fwrite(words, 4, count, stdout);
}

struct Stream {
    const char* name;
    uint32_t words_per_beat;
    std::vector<uint32_t> words;
    uint64_t count = 0;  // beats per repeat
    uint64_t next = 0;   // beats sent, over all repeats
    const uint32_t* beat() const { return &words[(next % count) * words_per_beat]; }
};

}  // namespace

int main(int argc, char** argv) {
    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
    auto top = std::make_unique<Vtop>(context.get());

#define STREAM(s) Stream{#s, words_of(top->PORT(s, payload))}
    std::vector<Stream> streams = {STREAM(config), STREAM(quant), STREAM(act), STREAM(index)
#ifdef SRAM_MODE
                                   , STREAM(cb_load)
#endif
    };
    const uint32_t out_words = words_of(top->PORT(out, payload));
    std::printf("{\"streams\": {");
    for (std::size_t i = 0; i < streams.size(); ++i)
        std::printf("%s\"%s\": %u", i ? ", " : "", streams[i].name, streams[i].words_per_beat);
    std::printf("}, \"out\": %u}\n", out_words);
    std::fflush(stdout);

    auto reset = [&top]() {
        top->rst = 1;
        for (int i = 0; i < 2; ++i) {
            top->clk = 0; top->eval();
            top->clk = 1; top->eval();
        }
        top->rst = 0;
    };
    reset();
    top->PORT(out, ready) = 1;

    std::vector<uint32_t> received;
    bool failed = false;
    while (read_word() == 1) {
        // After a failed run the design is mid-layer: the next run starts from reset. Otherwise
        // runs follow each other as they would on the hardware.
        if (failed) reset();
        const uint64_t repeats = read_word(), budget = read_word(), drain = read_word();
        for (Stream& s : streams) {
            s.count = read_word();
            s.next = 0;
            s.words.resize(s.count * s.words_per_beat);
            if (!read_words(s.words.data(), s.words.size())) return 2;
        }
        const uint64_t expected = read_word() * repeats;
        received.assign(expected * out_words, 0);

        uint64_t cycle = 0, outputs = 0, first_config = 0, last_output = 0, quiet = 0;
        uint32_t status = 0;
        bool config_seen = false;
        const uint64_t limit = budget * repeats;
        const auto start = std::chrono::steady_clock::now();
        // Run until every expected output has come and then `drain` quiet cycles have passed.
        while (quiet < drain) {
            if (cycle >= limit + drain) { status = 1; break; }
#define OFFER(i, s)                                                               \
    top->PORT(s, valid) = streams[i].next < streams[i].count * repeats;           \
    if (top->PORT(s, valid)) put(top->PORT(s, payload), streams[i].beat());
            OFFER(0, config) OFFER(1, quant) OFFER(2, act) OFFER(3, index)
#ifdef SRAM_MODE
            OFFER(4, cb_load)
#endif
            top->clk = 0;
            top->eval();
            // Transfers are decided by the settled values before the rising edge.
#define TAKE(i, s) if (top->PORT(s, valid) && top->PORT(s, ready)) ++streams[i].next;
            if (!config_seen && top->PORT(config, valid) && top->PORT(config, ready)) {
                config_seen = true;
                first_config = cycle;
            }
            TAKE(0, config) TAKE(1, quant) TAKE(2, act) TAKE(3, index)
#ifdef SRAM_MODE
            TAKE(4, cb_load)
#endif
            if (top->PORT(out, valid)) {
                if (outputs == expected) { status = 2; break; }
                get(top->PORT(out, payload), &received[outputs * out_words]);
                if (++outputs == expected / repeats) last_output = cycle;
            }
            if (outputs == expected) ++quiet;
            top->clk = 1;
            top->eval();
            ++cycle;
        }
        const auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::steady_clock::now() - start).count();
        if (status == 0)
            for (const Stream& s : streams)
                if (s.next != s.count * repeats) status = 3;
        const uint64_t cycles = config_seen && outputs >= expected / repeats
                                    ? last_output - first_config + 1 : 0;
        failed = status != 0;
        const uint64_t reply[] = {cycles, cycle, static_cast<uint64_t>(wall)};
        write_words(&status, 1);
        write_words(reply, 6);
        const uint32_t got = static_cast<uint32_t>(outputs);
        write_words(&got, 1);
        write_words(received.data(), outputs * out_words);
        std::fflush(stdout);
    }
    top->final();
    return 0;
}
