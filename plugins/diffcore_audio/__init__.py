"""diffcore's audio-spectrogram plugin: diffusion over log-mel spectrograms of short clips.

- :mod:`.spectrogram`: waveform <-> normalised log-mel (torchaudio MelSpectrogram, InverseMelScale, GriffinLim)
- :mod:`.synth`: the embedded data set of synthesized instrument notes and drums
- :mod:`.data`: a folder of audio files (soundfile) as fixed-length clips
- :mod:`.domain`: the ``audio`` Domain (data, sampling batches, writer, metrics)
- :mod:`.edit`: ``diffcore edit`` of WAV files: ``--keep`` (continuation), ``--gap`` (repair), rendering with the kept samples
- :mod:`.backbone`: the ``spec-unet1d`` backbone, its options and builder (diffcore.nn blocks over time, mels as channels)
- :mod:`.pitch`, :mod:`.metrics`: YIN pitch, pitch accuracy, MFCC Fréchet distance
- :mod:`.writer`: WAV files and spectrogram PNGs
- :mod:`.plugin`: the hook implementations (entry point ``audio-spectrogram``)

See docs/domains/audio.md.
"""
