// A plain Verilator C++ loop around the generated accelerator: the speed ceiling that the
// cocotb testbench is compared with. It replays the same stream beats (written by
// bench_rtl.py), with every input always valid and the output always ready, checks every
// output byte against golden, and prints cycles and wall time as one JSON line.
//
// Usage: harness BEAT_DIR REPEATS
#include "Vtop.h"
#include "verilated.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

// Verilator escapes the "__" of Amaranth's flattened port names as "___05F".
#define PORT(stream, field) stream##___05F##field

namespace {

struct Beats {
    std::vector<uint32_t> words;
    uint32_t count = 0;
    uint32_t words_per_beat = 0;
    uint64_t next = 0;  // beats sent so far, over all repeats
    const uint32_t* beat(uint64_t i) const { return &words[(i % count) * words_per_beat]; }
};

Beats load(const std::string& path) {
    Beats beats;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "harness: cannot open %s\n", path.c_str());
        std::exit(2);
    }
    in.read(reinterpret_cast<char*>(&beats.count), 4);
    in.read(reinterpret_cast<char*>(&beats.words_per_beat), 4);
    beats.words.resize(static_cast<size_t>(beats.count) * beats.words_per_beat);
    in.read(reinterpret_cast<char*>(beats.words.data()), beats.words.size() * 4);
    if (!in) {
        std::fprintf(stderr, "harness: %s is truncated\n", path.c_str());
        std::exit(2);
    }
    return beats;
}

template <typename T>
void put(T& port, const uint32_t* words, uint32_t n) {
    uint64_t value = words[0];
    if (n > 1) value |= static_cast<uint64_t>(words[1]) << 32;
    port = static_cast<T>(value);
}

template <std::size_t N>
void put(VlWide<N>& port, const uint32_t* words, uint32_t n) {
    for (std::size_t i = 0; i < N; ++i) port[i] = i < n ? words[i] : 0;
}

template <typename T>
uint64_t low_bits(const T& port) { return static_cast<uint64_t>(port); }

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s BEAT_DIR REPEATS\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    const uint64_t repeats = std::strtoull(argv[2], nullptr, 10);
    Beats config = load(dir + "/config.bin"), quant = load(dir + "/quant.bin");
    Beats act = load(dir + "/act.bin"), index = load(dir + "/index.bin");
#ifdef SRAM_MODE
    Beats cb_load = load(dir + "/cb_load.bin");
#endif
    Beats expected = load(dir + "/out.bin");
    const unsigned lanes = LANES;

    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtop>(context.get());
    top->rst = 1;
    for (int i = 0; i < 2; ++i) {
        top->clk = 0; top->eval();
        top->clk = 1; top->eval();
    }
    top->rst = 0;
    top->PORT(out, ready) = 1;

    const uint64_t total_outputs = expected.count * repeats;
    const uint64_t limit = 100 * (index.count + 1000) * repeats;
    uint64_t cycles = 0, outputs = 0, mismatches = 0;
    const auto start = std::chrono::steady_clock::now();
    while (outputs < total_outputs && cycles < limit) {
#define OFFER(s)                                                            \
    top->PORT(s, valid) = s.next < s.count * repeats;                       \
    if (top->PORT(s, valid)) put(top->PORT(s, payload), s.beat(s.next), s.words_per_beat);
        OFFER(config) OFFER(quant) OFFER(act) OFFER(index)
#ifdef SRAM_MODE
        OFFER(cb_load)
#endif
        top->clk = 0;
        top->eval();
        // Handshakes are decided by the settled values before the rising edge.
#define TAKE(s) if (top->PORT(s, valid) && top->PORT(s, ready)) ++s.next;
        TAKE(config) TAKE(quant) TAKE(act) TAKE(index)
#ifdef SRAM_MODE
        TAKE(cb_load)
#endif
        if (top->PORT(out, valid)) {
            const uint64_t got = low_bits(top->PORT(out, payload));
            const uint32_t* want = expected.beat(outputs);
            for (unsigned lane = 0; lane < lanes; ++lane) {
                const uint8_t want_byte = (want[lane / 4] >> (8 * (lane % 4))) & 0xFF;
                const uint8_t got_byte = (got >> (8 * lane)) & 0xFF;
                mismatches += want_byte != got_byte;
            }
            ++outputs;
        }
        top->clk = 1;
        top->eval();
        ++cycles;
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    top->final();
    std::printf("{\"cycles\": %llu, \"outputs\": %llu, \"expected_outputs\": %llu, \"mismatches\": %llu, \"wall_s\": %.6f}\n",
                static_cast<unsigned long long>(cycles), static_cast<unsigned long long>(outputs),
                static_cast<unsigned long long>(total_outputs), static_cast<unsigned long long>(mismatches), wall);
    return (mismatches == 0 && outputs == total_outputs) ? 0 : 1;
}
